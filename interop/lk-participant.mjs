// A LiveKit participant driven by the official SDK (@livekit/rtc-node).
//
//   node lk-participant.mjs <WS_URL> <TOKEN>
//
// Prints one JSON object per line on stdout:
//   {"event":"connected","identity":…,"metadata":…,"attributes":{…},
//    "participants":[{identity,metadata,attributes}…]}
//   {"event":"metadata","identity":…,"metadata":…}        (any participant, including me)
//   {"event":"attributes","identity":…,"attributes":{…all of them…},"changed":{…}}
//   {"event":"joined","identity":…,"metadata":…,"attributes":{…}} / {"event":"left","identity":…}
//   {"event":"data","from":…,"topic":…,"payload":…(utf8),"payloadHex":…,"kind":…}
//   {"event":"sent","id":…} / {"event":"error","message":…}
// Reads commands from stdin, one JSON object per line:
//   {"cmd":"send","id":…,"payload":"text","destinations":["0x…"],"topic":"…","reliable":true}
//     (or "payloadHex":"…" instead of "payload" for binary data)
//   {"cmd":"leave"}
// Leaves and exits when stdin closes, and after LK_MAX_SECONDS (default 120) in any case.
import { Room, RoomEvent } from '@livekit/rtc-node'
import readline from 'node:readline'

const [url, token] = process.argv.slice(2)
if (!url || !token) {
  console.error('usage: lk-participant.mjs WS_URL TOKEN')
  process.exit(2)
}
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const room = new Room()
let done = false
async function finish(code = 0) {
  if (done) return
  done = true
  try {
    await room.disconnect()
  } catch {}
  process.exit(code)
}
setTimeout(() => finish(0), Number(process.env.LK_MAX_SECONDS ?? 120) * 1000).unref()

room
  .on(RoomEvent.ParticipantMetadataChanged, (metadata, p) => out({ event: 'metadata', identity: p.identity, metadata }))
  .on(RoomEvent.ParticipantAttributesChanged, (changed, p) => out({ event: 'attributes', identity: p.identity, attributes: p.attributes, changed }))
  .on(RoomEvent.ParticipantConnected, (p) => out({ event: 'joined', identity: p.identity, metadata: p.metadata, attributes: p.attributes }))
  .on(RoomEvent.ParticipantDisconnected, (p) => out({ event: 'left', identity: p.identity }))
  .on(RoomEvent.DataReceived, (payload, p, kind, topic) =>
    out({ event: 'data', from: p?.identity ?? null, topic: topic ?? null, kind, payload: Buffer.from(payload).toString('utf8'), payloadHex: Buffer.from(payload).toString('hex') })
  )
  .on(RoomEvent.Disconnected, (reason) => out({ event: 'disconnected', reason }))

try {
  await room.connect(url, token, { autoSubscribe: false, dynacast: false })
} catch (e) {
  out({ event: 'error', message: String(e?.message ?? e) })
  await finish(1)
}
const me = room.localParticipant
out({
  event: 'connected',
  identity: me.identity,
  metadata: me.metadata,
  attributes: me.attributes,
  participants: [...room.remoteParticipants.values()].map((p) => ({ identity: p.identity, metadata: p.metadata, attributes: p.attributes })),
})

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch {
    out({ event: 'error', message: 'bad command' })
    return
  }
  if (cmd.cmd === 'send') {
    try {
      await me.publishData(cmd.payloadHex !== undefined ? new Uint8Array(Buffer.from(cmd.payloadHex, 'hex')) : new TextEncoder().encode(cmd.payload), {
        reliable: cmd.reliable ?? true,
        topic: cmd.topic,
        destination_identities: cmd.destinations ?? [],
      })
      out({ event: 'sent', id: cmd.id ?? null })
    } catch (e) {
      out({ event: 'error', message: String(e?.message ?? e) })
    }
  } else if (cmd.cmd === 'leave') {
    await finish(0)
  }
})
rl.on('close', () => finish(0))
