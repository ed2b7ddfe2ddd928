// Generates the reaction and chat packet vectors of crates/chat-core/tests/vectors/reactions.json
// with the official codec (@dcl/protocol's rfc4.Packet, as the reference client uses it).
//
//   node interop/gen-reaction-vectors.mjs > crates/chat-core/tests/vectors/reactions.json
//   node interop/gen-reaction-vectors.mjs --check crates/chat-core/tests/vectors/reactions.json
//
// Deterministic: fixed addresses, timestamps and emoji indices, so a re-run prints the same bytes
// as long as the @dcl/protocol version in package-lock.json stays the same (the file records it).
// `--check` regenerates and fails when the committed file differs.
//
// What each vector holds:
// - `hex`: Packet.encode(...) by the official codec, protocol_version 100. The Rust tests encode
//   the same fields with chat-core and must produce exactly these bytes, and decode these bytes
//   back to the same fields.
// - reactions: `emoji_index` and `removal` as the reference client means them, `wire_emoji_index`
//   the value in the packet (the index, or its bitwise complement ~index for a removal, as the
//   reference client's ReactionWireEncoding does), `message_id` the id of the message reacted to,
//   `address` the reacting user's address.
// - `message_id` is derived here from `message_sender` and `message_timestamp` by the reference
//   client's rule ("{lower-case sender}:{timestamp}", the timestamp written as Unity's Mono writes
//   a double with the invariant culture: 15 significant digits, trailing zeros dropped), computed
//   independently of the Rust code with Number.prototype.toPrecision(15). The timestamps are
//   chosen away from rounding ties, where Mono's two-step rounding could differ.
// - `reject`: packets built with the official codec that the receiver must refuse, with the
//   reason chat-core gives (`error`).
import { readFileSync } from 'node:fs'
import pkg from '@dcl/protocol/out-js/decentraland/kernel/comms/rfc4/comms.gen.js'

const { Packet } = pkg
const version = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version

const VERSION = 100
const ALICE = '0x23C86705Dd3a3855D939322C53379d42A4E365ee' // checksummed on purpose
const BOB = '0x8ba1f109551bd432803012645ac136ddd64dba72'

const hex = (bytes) => Buffer.from(bytes).toString('hex')

// .NET "G" with 15 significant digits, for numbers in the OLE date range (positional notation).
const g15 = (x) => {
  let s = x.toPrecision(15)
  if (s.includes('e')) throw new Error(`unexpected exponent for ${x}`)
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '')
  return s
}
const messageId = (sender, ts) => `${sender.toLowerCase()}:${g15(ts)}`

// OLE dates as .NET's DateTime.ToOADate gives them: whole milliseconds / 86,400,000 after
// 1899-12-30, so the timestamps look like the reference client's.
const ole = (iso) => (Date.parse(iso) - Date.parse('1899-12-30T00:00:00Z')) / 86_400_000

const encodeReaction = (wire, id, address, protocolVersion = VERSION) =>
  hex(Packet.encode({
    message: { $case: 'chatReaction', chatReaction: { emojiIndex: wire, messageId: id, address } },
    protocolVersion
  }).finish())

const reactions = []
const addReaction = (name, emoji, removal, sender, ts, address) => {
  const id = messageId(sender, ts)
  const wire = removal ? ~emoji : emoji
  reactions.push({
    name,
    emoji_index: emoji,
    removal,
    wire_emoji_index: wire,
    message_sender: sender,
    message_timestamp: ts,
    message_id: id,
    address,
    hex: encodeReaction(wire, id, address)
  })
}

// Bob reacts to Alice's message, and takes it back; Alice reacts to Bob's.
addReaction('add emoji 42', 42, false, ALICE, ole('2025-11-26T09:40:00.123Z'), BOB)
addReaction('remove emoji 42', 42, true, ALICE, ole('2025-11-26T09:40:00.123Z'), BOB)
addReaction('add emoji 0 (field left out)', 0, false, BOB, ole('2026-01-01T00:00:00.000Z'), ALICE.toLowerCase())
addReaction('remove emoji 0 (wire -1)', 0, true, BOB, ole('2026-01-01T00:00:00.000Z'), ALICE.toLowerCase())
addReaction('add the largest index', 4095, false, ALICE, ole('2030-06-15T23:59:59.999Z'), BOB)
addReaction('remove the largest index', 4095, true, ALICE, ole('2030-06-15T23:59:59.999Z'), BOB)
addReaction('no address', 7, false, BOB, ole('2025-02-03T04:05:06.789Z'), '')

const chats = []
const addChat = (name, text, iso) => {
  const timestamp = ole(iso)
  chats.push({
    name,
    text,
    timestamp,
    hex: hex(Packet.encode({ message: { $case: 'chat', chat: { message: text, timestamp } }, protocolVersion: VERSION }).finish())
  })
}
addChat('chat', 'hola 👋', '2025-11-26T09:40:00.123Z')
addChat('chat, 155 UTF-16 units', 'x'.repeat(153) + '👋', '2026-01-01T00:00:00.000Z')

const goodId = messageId(ALICE, ole('2025-11-26T09:40:00.123Z'))
const reject = [
  { name: 'emoji index 4096', hex: encodeReaction(4096, goodId, BOB), error: 'emoji index 4096 is outside 0..4096' },
  { name: 'removal of emoji 4096', hex: encodeReaction(~4096, goodId, BOB), error: 'emoji index 4096 is outside 0..4096' },
  { name: 'empty message id', hex: encodeReaction(1, '', BOB), error: 'empty message id' },
  { name: 'message id of 97 bytes', hex: encodeReaction(1, 'x'.repeat(97), BOB), error: 'message id of 97 bytes is over the 96-byte limit' },
  { name: 'address that is not one', hex: encodeReaction(1, goodId, 'mallory'), error: 'the reacting address is not an address' },
  { name: 'protocol version 11', hex: encodeReaction(1, goodId, BOB, 11), error: 'protocol version 11, expected 100' }
]

const out = JSON.stringify({
  generator: 'interop/gen-reaction-vectors.mjs',
  packages: { '@dcl/protocol': version('@dcl/protocol') },
  protocol_version: VERSION,
  reactions,
  chats,
  reject
}, null, 2) + '\n'

const checkIndex = process.argv.indexOf('--check')
if (checkIndex >= 0) {
  const file = process.argv[checkIndex + 1]
  const committed = readFileSync(file, 'utf8')
  if (committed !== out) {
    console.error(`${file} differs from what the official codec gives now; regenerate it`)
    process.exit(1)
  }
  console.error(`${file}: up to date`)
} else {
  process.stdout.write(out)
}
