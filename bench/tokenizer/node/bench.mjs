// The official tiktoken npm package on the shared benchmark corpus, measured as
// ../shared/tokenizers/BENCH.md describes: encoder loading not timed, 1 warm-up run, then N timed
// runs on the main thread, median reported; whole-file and per-doc (pieces of >= 4096 bytes cut
// after a blank line, the same cut as tokenizer_bench.cpp). MB = 10^6 bytes of UTF-8 input.
// usage: node bench.mjs CORPUS [RUNS]
import { readFileSync } from "node:fs";
import { get_encoding } from "tiktoken";

const corpus = process.argv[2];
const runs = Number(process.argv[3] || 5);
const buf = readFileSync(corpus);
const text = buf.toString("utf8");
const docs = [];
for (let start = 0; start < buf.length; ) {
  const at = buf.indexOf("\n\n", start + 4096);
  const end = at < 0 ? buf.length : at + 2;
  docs.push(buf.subarray(start, end).toString("utf8"));
  start = end;
}
const expected = { o200k_base: 2718932, cl100k_base: 2864248 };
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
for (const name of ["o200k_base", "cl100k_base"]) {
  const enc = get_encoding(name);
  for (const mode of ["whole-file", "per-doc"]) {
    const mbps = [], cpu = [];
    let ntok = 0;
    for (let r = -1; r < runs; r++) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      ntok = 0;
      if (mode === "whole-file") {
        ntok = enc.encode_ordinary(text).length;
      } else {
        for (const d of docs) ntok += enc.encode_ordinary(d).length;
      }
      const w = Number(process.hrtime.bigint() - t0) / 1e9;
      const c = process.cpuUsage(c0);
      if (r >= 0) {
        mbps.push(buf.length / w / 1e6);
        cpu.push(buf.length / ((c.user + c.system) / 1e6) / 1e6);
      }
    }
    const m = median(mbps);
    console.log(JSON.stringify({
      impl: "npm tiktoken@1.0.22", encoding: name, mode,
      mb_per_s_median: +m.toFixed(2), mb_per_s_min: +Math.min(...mbps).toFixed(2),
      mb_per_s_max: +Math.max(...mbps).toFixed(2),
      tokens_per_s_median: Math.round(m * 1e6 / buf.length * ntok),
      mb_per_s_cpu_median: +median(cpu).toFixed(2), tokens: ntok,
      verified: mode === "per-doc" || ntok === expected[name],
    }));
  }
  enc.free();
}
