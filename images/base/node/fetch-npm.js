// Downloads a URL and writes it to a file only if its sha512 matches an npm "integrity" string (sha512-<base64>).
//   node fetch-npm.js URL INTEGRITY OUT
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const https = require("https");

const [url, integrity, out] = process.argv.slice(2);
function fail(msg) {
  console.error(`fetch-npm: ${url}: ${msg}`);
  process.exit(1);
}
https.get(url, (res) => {
  if (res.statusCode !== 200) fail(`HTTP ${res.statusCode}`);
  const chunks = [];
  res.on("data", (c) => chunks.push(c));
  res.on("end", () => {
    const body = Buffer.concat(chunks);
    const actual = "sha512-" + crypto.createHash("sha512").update(body).digest("base64");
    if (actual !== integrity) fail(`integrity ${actual}, expected ${integrity}`);
    fs.writeFileSync(out, body);
  });
}).on("error", (e) => fail(e.message));
