// Benchmarks of the official SDK (@livekit/rtc-node), run by the Rust bench for comparison.
//
//   node bench-sdk.mjs latency <WS_URL> <TOKEN_A> <TOKEN_B> <COUNT>
//     A sends COUNT 1 KB reliable messages to B (one every 5 ms); both rooms live in this
//     process, so one clock measures the one-way latency. Prints {"p50_ms","p99_ms","received"}.
//   node bench-sdk.mjs idle <WS_URL> <TOKENS_FILE>
//     joins one Room per token (one per line), waits, and prints
//     {"baseline_kib","loaded_kib","participants"} (VmRSS before joining and after all joined).
import { Room, RoomEvent } from '@livekit/rtc-node'
import { readFileSync } from 'node:fs'

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const rssKib = () => {
  const status = readFileSync('/proc/self/status', 'utf8')
  return Number(status.match(/VmRSS:\s+(\d+)/)[1])
}
setTimeout(() => process.exit(3), Number(process.env.BENCH_MAX_SECONDS ?? 300) * 1000).unref()

const [mode, url, ...rest] = process.argv.slice(2)
if (mode === 'latency') {
  const [tokA, tokB, countStr] = rest
  const count = Number(countStr)
  const a = new Room()
  const b = new Room()
  await a.connect(url, tokA, { autoSubscribe: false })
  await b.connect(url, tokB, { autoSubscribe: false })
  const bIdentity = b.localParticipant.identity
  const lat = []
  let done
  const finished = new Promise((r) => (done = r))
  b.on(RoomEvent.DataReceived, (payload) => {
    const sent = Buffer.from(payload).readDoubleLE(0)
    lat.push(performance.now() - sent)
    if (lat.length === count) done()
  })
  await sleep(1000)
  const buf = Buffer.alloc(1000)
  for (let i = 0; i < count; i++) {
    buf.writeDoubleLE(performance.now(), 0)
    await a.localParticipant.publishData(new Uint8Array(buf), { reliable: true, destination_identities: [bIdentity], topic: bIdentity })
    await sleep(5)
  }
  await Promise.race([finished, sleep(10000)])
  lat.sort((x, y) => x - y)
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]
  out({ p50_ms: q(0.5), p99_ms: q(0.99), received: lat.length })
  await a.disconnect()
  await b.disconnect()
  process.exit(0)
} else if (mode === 'idle') {
  const tokens = readFileSync(rest[0], 'utf8').split('\n').filter(Boolean)
  await sleep(500)
  const baseline = rssKib()
  const rooms = []
  for (const t of tokens) {
    const r = new Room()
    await r.connect(url, t, { autoSubscribe: false })
    rooms.push(r)
  }
  await sleep(3000)
  out({ baseline_kib: baseline, loaded_kib: rssKib(), participants: rooms.length })
  for (const r of rooms) await r.disconnect()
  process.exit(0)
} else {
  console.error('usage: bench-sdk.mjs latency|idle …')
  process.exit(2)
}
