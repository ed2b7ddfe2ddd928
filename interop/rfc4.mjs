// The official comms codec (@dcl/protocol rfc4.Packet) for the chat-core wire tests.
//
//   node rfc4.mjs encode-chat <text> <timestamp> <protocol_version>  → hex of the Packet
//   node rfc4.mjs encode-chat-hex <hex of the UTF-8 text> <timestamp> <protocol_version>
//   node rfc4.mjs encode-position                                     → hex of a position Packet
//   node rfc4.mjs encode-reaction <emoji_index> <message_id> <address> → hex of a ChatReaction
//                                   Packet (emoji_index as sent: ~index for a removal)
//   node rfc4.mjs decode <hex>                                        → JSON of the Packet
import pkg from '@dcl/protocol/out-js/decentraland/kernel/comms/rfc4/comms.gen.js'

const { Packet } = pkg
const [mode, ...args] = process.argv.slice(2)
const hex = (bytes) => Buffer.from(bytes).toString('hex')

if (mode === 'encode-chat' || mode === 'encode-chat-hex') {
  const [text, timestamp, version] = args
  // encode-chat-hex takes the text as hex of its UTF-8 (for texts with NUL, which argv cannot carry)
  const message = mode === 'encode-chat-hex' ? Buffer.from(text, 'hex').toString('utf8') : text
  const bytes = Packet.encode({
    message: { $case: 'chat', chat: { message, timestamp: Number(timestamp) } },
    protocolVersion: Number(version)
  }).finish()
  console.log(hex(bytes))
} else if (mode === 'encode-position') {
  const bytes = Packet.encode({
    message: { $case: 'position', position: { index: 1, positionX: 1, positionY: 2, positionZ: 3, rotationX: 0, rotationY: 0, rotationZ: 0, rotationW: 1 } },
    protocolVersion: 100
  }).finish()
  console.log(hex(bytes))
} else if (mode === 'encode-reaction') {
  const [emojiIndex, messageId, address] = args
  const bytes = Packet.encode({
    message: { $case: 'chatReaction', chatReaction: { emojiIndex: Number(emojiIndex), messageId, address } },
    protocolVersion: 100
  }).finish()
  console.log(hex(bytes))
} else if (mode === 'decode') {
  const p = Packet.decode(Buffer.from(args[0], 'hex'))
  console.log(JSON.stringify({
    case: p.message?.$case ?? null,
    message: p.message?.chat?.message ?? null,
    timestamp: p.message?.chat?.timestamp ?? null,
    forwardedFrom: p.message?.chat?.forwardedFrom ?? null,
    reaction: p.message?.chatReaction ?? null,
    protocolVersion: p.protocolVersion
  }))
} else {
  console.error('usage: rfc4.mjs encode-chat|encode-position|encode-reaction|decode …')
  process.exit(2)
}
