// The friendship/block rate limits as the official client sees them: @dcl/rpc (client +
// WebSocket transport), @dcl/protocol (SocialService v2) and @dcl/crypto (the auth frame).
//
//   node social-ratelimit.mjs <WS_URL> <PER_ACTOR> <PER_PAIR>
//
// The service must run with FRIENDSHIP_RATE_LIMIT_PER_ACTOR=4 and FRIENDSHIP_RATE_LIMIT_PER_PAIR=2
// (the arguments say which limits it was given; the scenario needs exactly those) and a window
// longer than the scenario. Prints one JSON line per check; exits 1 on the first failed one.
import WebSocket from 'ws'
import { createRpcClient } from '@dcl/rpc'
import { WebSocketTransport } from '@dcl/rpc/dist/transports/WebSocket.js'
import { loadService } from '@dcl/rpc/dist/codegen.js'
import { Authenticator } from '@dcl/crypto'
import pkg from '@dcl/protocol/out-js/decentraland/social_service/v2/social_service_v2.gen.js'
import { createIdentity } from './identity.mjs'

const { SocialServiceDefinition } = pkg
const [url, perActor, perPair] = process.argv.slice(2)
setTimeout(() => {
  console.error('scenario timed out')
  process.exit(3)
}, 60000).unref()

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
function check(name, cond, detail) {
  out({ check: name, ok: !!cond, detail })
  if (!cond) {
    console.error(JSON.stringify({ check: name, detail }))
    process.exit(1)
  }
}
check('limits given to the service', perActor === '4' && perPair === '2', { perActor, perPair })

async function connect() {
  const { owner, identity } = await createIdentity()
  const ws = new WebSocket(url)
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  const timestamp = String(Date.now())
  const metadata = '{}'
  const chain = Authenticator.signPayload(identity, ['get', '/', timestamp, metadata].join(':'))
  const headers = { 'x-identity-timestamp': timestamp, 'x-identity-metadata': metadata }
  chain.forEach((link, i) => (headers[`x-identity-auth-chain-${i}`] = JSON.stringify(link)))
  ws.send(JSON.stringify(headers))
  const client = await createRpcClient(WebSocketTransport(ws))
  const social = loadService(await client.createPort('social_service'), SocialServiceDefinition)
  return { address: owner.address.toLowerCase(), social, ws }
}

const limited = (r) => r.response?.$case === 'invalidRequest' && /too many/i.test(r.response.invalidRequest.message ?? '')
const request = (from, to) => from.social.upsertFriendship({ action: { $case: 'request', request: { user: { address: to.address } } } })

const [a, b, c, d] = await Promise.all([connect(), connect(), connect(), connect()])

// The pair counter of friendship actions is shared by both users (limit 2).
let r = await request(a, b)
check('A requests B', r.response?.$case === 'accepted', r)
r = await b.social.upsertFriendship({ action: { $case: 'reject', reject: { user: { address: a.address } } } })
check('B rejects A', r.response?.$case === 'accepted', r)
r = await request(a, b)
check('a third friendship action on the pair is refused in invalidRequest', limited(r), r)
const sent = await a.social.getSentFriendshipRequests({})
check('the refused request was not stored', sent.response?.$case === 'requests' && sent.response.requests.requests.length === 0, sent)

// Blocks count per direction: B blocks and unblocks A (2 of B→A), A can still block B.
r = await b.social.blockUser({ user: { address: a.address } })
check('B blocks A', r.response?.$case === 'ok', r)
r = await b.social.unblockUser({ user: { address: a.address } })
check('B unblocks A', r.response?.$case === 'ok', r)
r = await a.social.blockUser({ user: { address: b.address } })
check('A can still block B (blocks count per direction)', r.response?.$case === 'ok', r)
r = await b.social.blockUser({ user: { address: a.address } })
check('a third block B→A is refused in invalidRequest', limited(r), r)
const status = await b.social.getBlockingStatus({})
check('the refused block was not stored', !status.blockedUsers.includes(a.address), status)
// B has spent 4 actions (reject, block, unblock, refused block): the actor limit.
r = await b.social.unblockUser({ user: { address: a.address } })
check('an unblock over the limit is refused in invalidRequest', limited(r), r)

// The actor counter spans targets (limit 4): A has spent 3 (request, refused request, block).
r = await request(a, c)
check('A requests C (fourth action)', r.response?.$case === 'accepted', r)
r = await request(a, d)
check('a fifth action of A, to a new user, is refused', limited(r), r)
r = await request(d, a)
check('other users are not limited by A', r.response?.$case === 'accepted', r)

for (const x of [a, b, c, d]) x.ws.close()
out({ done: true })
process.exit(0)
