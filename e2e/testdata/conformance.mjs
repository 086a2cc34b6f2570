// The JavaScript client's half of TestConformance (conformance_test.go):
// for each case {stream, since, compact} it watches the stream, polls it
// from the cursor with the package's own pollURL and readPoll, and prints
// the answers, in v1's shape, as one JSON array on standard output.
//
// Usage: node conformance.mjs BASE_URL CASES_JSON

import { pollURL, readPoll } from "../../clients/js/emojicast.js";

const [base, casesJSON] = process.argv.slice(2);
const out = [];
for (const c of JSON.parse(casesJSON)) {
  const w = await (await fetch(`${base}/v1/streams/${encodeURIComponent(c.stream)}/watch?user=js-conformance`)).json();
  const resp = await fetch(pollURL(new URL(w.pull, base).href, c.since, c.compact));
  if (!resp.ok) throw new Error(`poll of ${c.stream}: ${resp.status} ${await resp.text()}`);
  out.push(readPoll(JSON.parse(await resp.text()), w.emojis || []));
}
process.stdout.write(JSON.stringify(out));
