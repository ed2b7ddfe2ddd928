// Drives our social service with the official packages: @dcl/rpc (client + WebSocket
// transport), @dcl/protocol (SocialService v2 definition) and @dcl/crypto (the auth frame).
//
//   node social-client.mjs <WS_URL>
//   node social-client.mjs <WS_URL> set-privacy <OWNER_KEY> <all|only_friends>
//
// Runs a two-user scenario, printing one JSON line per check ({"check":…,"ok":true}); exits 1
// on the first failed check. Bounded by SOCIAL_MAX_SECONDS (default 60).
import WebSocket from 'ws'
import { createRpcClient } from '@dcl/rpc'
import { WebSocketTransport } from '@dcl/rpc/dist/transports/WebSocket.js'
import { loadService } from '@dcl/rpc/dist/codegen.js'
import { Authenticator } from '@dcl/crypto'
import pkg from '@dcl/protocol/out-js/decentraland/social_service/v2/social_service_v2.gen.js'
import { createIdentity } from './identity.mjs'

const { SocialServiceDefinition, PrivateMessagePrivacySetting, FriendshipStatus, SituationReactionsVisibility, ConnectivityStatus } = pkg
const url = process.argv[2]
setTimeout(() => {
  console.error('scenario timed out')
  process.exit(3)
}, Number(process.env.SOCIAL_MAX_SECONDS ?? 60) * 1000).unref()

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
function check(name, cond, detail) {
  out({ check: name, ok: !!cond, detail })
  if (!cond) process.exit(1)
}

async function connect(ownerKey) {
  const { owner, identity } = await createIdentity(ownerKey)
  const address = owner.address.toLowerCase()
  const ws = new WebSocket(url)
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  const timestamp = String(Date.now())
  const metadata = '{}'
  const chain = Authenticator.signPayload(identity, ['get', '/', timestamp, metadata].join(':'))
  const headers = {}
  chain.forEach((link, i) => (headers[`x-identity-auth-chain-${i}`] = JSON.stringify(link)))
  headers['x-identity-timestamp'] = timestamp
  headers['x-identity-metadata'] = metadata
  ws.send(JSON.stringify(headers))
  const client = await createRpcClient(WebSocketTransport(ws))
  const port = await client.createPort('social_service')
  const social = loadService(port, SocialServiceDefinition)
  return { address, social, ws, client }
}

// Consumes a server stream in the background (the request is only sent on the first next()).
function collect(iterable) {
  const state = { items: [], iterator: iterable[Symbol.asyncIterator]() }
  ;(async () => {
    try {
      for (;;) {
        const r = await state.iterator.next()
        if (r.done) break
        state.items.push(r.value)
      }
    } catch (e) {
      state.error = e
    }
  })()
  return state
}

async function waitFor(state, what, pred) {
  const deadline = Date.now() + 10000
  while (Date.now() < deadline) {
    const found = state.items.find(pred)
    if (found) return found
    await new Promise((r) => setTimeout(r, 20))
  }
  check(`${what} arrives`, false, { items: state.items, error: String(state.error) })
}

// Mode `set-privacy <OWNER_KEY> <all|only_friends>`: one UpsertSocialSettings as that wallet.
if (process.argv[3] === 'set-privacy') {
  const me = await connect(process.argv[4])
  const value = process.argv[5] === 'only_friends' ? PrivateMessagePrivacySetting.ONLY_FRIENDS : PrivateMessagePrivacySetting.ALL
  const r = await me.social.upsertSocialSettings({ privateMessagesPrivacy: value })
  out({ address: me.address, response: r.response?.$case, detail: r })
  me.ws.close()
  process.exit(r.response?.$case === 'ok' ? 0 : 1)
}

const a = await connect()
const b = await connect()
check('handshake', a.social && b.social)

const settings = await a.social.getSocialSettings({})
check('default settings', settings.response?.$case === 'ok' &&
  settings.response.ok.settings.privateMessagesPrivacy === PrivateMessagePrivacySetting.ALL, settings)

const bFriendship = collect(b.social.subscribeToFriendshipUpdates({}))
const bBlocks = collect(b.social.subscribeToBlockUpdates({}))
const bOnline = collect(b.social.subscribeToFriendConnectivityUpdates({}))
await new Promise((r) => setTimeout(r, 300))

const req = await a.social.upsertFriendship({ action: { $case: 'request', request: { user: { address: b.address }, message: 'hello there' } } })
check('request accepted', req.response?.$case === 'accepted', req)
const upd = await waitFor(bFriendship, 'friendship update', (u) => u.update?.$case === 'request')
check('request pushed to the other user', upd?.update?.$case === 'request' &&
  upd.update.request.friend.address === a.address && upd.update.request.message === 'hello there', upd)

const pending = await b.social.getPendingFriendshipRequests({ pagination: { limit: 10, offset: 0 } })
check('pending requests', pending.response?.$case === 'requests' &&
  pending.response.requests.requests.some((r) => r.friend.address === a.address), pending)
const sent = await a.social.getSentFriendshipRequests({})
check('sent requests', sent.response?.$case === 'requests' && sent.response.requests.requests[0]?.friend.address === b.address, sent)

const acc = await b.social.upsertFriendship({ action: { $case: 'accept', accept: { user: { address: a.address } } } })
check('accept', acc.response?.$case === 'accepted', acc)
const friends = await a.social.getFriends({ pagination: { limit: 10, offset: 0 } })
check('friends', friends.friends.length === 1 && friends.friends[0].address === b.address && friends.paginationData.total === 1, friends)
const status = await a.social.getFriendshipStatus({ user: { address: b.address } })
check('status accepted', status.response?.$case === 'accepted' && status.response.accepted.status === FriendshipStatus.ACCEPTED, status)
const mutual = await a.social.getMutualFriends({ user: { address: b.address } })
check('mutual friends (none)', mutual.friends.length === 0, mutual)

const upsert = await a.social.upsertSocialSettings({ privateMessagesPrivacy: PrivateMessagePrivacySetting.ONLY_FRIENDS })
check('upsert settings', upsert.response?.$case === 'ok' && upsert.response.ok.privateMessagesPrivacy === PrivateMessagePrivacySetting.ONLY_FRIENDS, upsert)
const reactions = await a.social.upsertSocialSettings({ showSituationReactions: SituationReactionsVisibility.HIDE })
check('upsert situation reactions, privacy kept', reactions.response?.$case === 'ok' &&
  reactions.response.ok.showSituationReactions === SituationReactionsVisibility.HIDE &&
  reactions.response.ok.privateMessagesPrivacy === PrivateMessagePrivacySetting.ONLY_FRIENDS, reactions)
const stored = await a.social.getSocialSettings({})
check('settings read back', stored.response?.$case === 'ok' &&
  stored.response.ok.settings.showSituationReactions === SituationReactionsVisibility.HIDE &&
  stored.response.ok.settings.privateMessagesPrivacy === PrivateMessagePrivacySetting.ONLY_FRIENDS, stored)
const empty = await a.social.upsertSocialSettings({})
check('upsert with no field is invalid', empty.response?.$case === 'invalidRequest', empty)

const pms = await b.social.getPrivateMessagesSettings({ user: [{ address: a.address }, { address: b.address }] })
check('private messages settings', pms.response?.$case === 'ok' &&
  pms.response.ok.settings[0].privateMessagesPrivacy === PrivateMessagePrivacySetting.ONLY_FRIENDS &&
  pms.response.ok.settings[0].isFriend === true && pms.response.ok.settings[1].isFriend === false, pms)
const many = await b.social.getPrivateMessagesSettings({ user: Array.from({ length: 51 }, (_, i) => ({ address: '0x' + i.toString(16).padStart(40, '0') })) })
check('51 addresses are refused', many.response?.$case === 'invalidRequest', many)
const badAddr = await b.social.getPrivateMessagesSettings({ user: [{ address: 'not-an-address' }] })
check('invalid address is refused', badAddr.response?.$case === 'invalidRequest', badAddr)
const selfReq = await a.social.upsertFriendship({ action: { $case: 'request', request: { user: { address: a.address } } } })
check('self request is refused', selfReq.response?.$case === 'invalidRequest', selfReq)

const block = await a.social.blockUser({ user: { address: b.address } })
check('block', block.response?.$case === 'ok', block)
const bu = await waitFor(bBlocks, 'block update', (u) => u.isBlocked)
check('block pushed to the blocked user', bu?.address === a.address && bu.isBlocked === true, bu)
const blocking = await b.social.getBlockingStatus({})
check('blocking status', blocking.blockedByUsers.includes(a.address), blocking)
const blockedList = await a.social.getBlockedUsers({})
check('blocked users', blockedList.profiles[0]?.address === b.address, blockedList)
const toBlocker = await b.social.upsertFriendship({ action: { $case: 'request', request: { user: { address: a.address } } } })
check('a request to someone who blocked you is refused', toBlocker.response?.$case === 'invalidFriendshipAction', toBlocker)
const afterBlock = await a.social.getFriends({})
check('a block ends the friendship', afterBlock.friends.length === 0, afterBlock)

// Connectivity: a friend of B connecting shows as ONLINE on B's stream. Make C, befriend B, connect.
const c = await connect()
await c.social.upsertFriendship({ action: { $case: 'request', request: { user: { address: b.address } } } })
await b.social.upsertFriendship({ action: { $case: 'accept', accept: { user: { address: c.address } } } })
// A new subscription starts with the friends online now: C.
const bOnlineNow = collect(b.social.subscribeToFriendConnectivityUpdates({}))
const now = await waitFor(bOnlineNow, 'connectivity snapshot', (u) => u.friend?.address === c.address)
check('a new connectivity subscription starts with the friends online', now.status === ConnectivityStatus.ONLINE, now)
c.ws.close()
await new Promise((r) => setTimeout(r, 300))
const offline = await waitFor(bOnline, 'connectivity update', (u) => u.friend?.address === c.address)
check('friend connectivity pushed', offline.friend.address === c.address && offline.status === ConnectivityStatus.OFFLINE, offline)

// Unblocking works and is pushed too.
const unblock = await a.social.unblockUser({ user: { address: b.address } })
check('unblock', unblock.response?.$case === 'ok', unblock)
await waitFor(bBlocks, 'unblock update', (u) => u.address === a.address && u.isBlocked === false)
const again = await b.social.upsertFriendship({ action: { $case: 'request', request: { user: { address: a.address } } } })
check('after unblocking, requests work again', again.response?.$case === 'accepted', again)

// Cancelling a stream from the client (return()): the server drops its producer (its live
// stream count goes down) and the connection stays up.
const statusUrl = url.replace(/^ws/, 'http').replace(/\/?$/, '/status')
const streamsNow = async () => (await (await fetch(statusUrl)).json()).streams
const before = await streamsNow()
await bFriendship.iterator.return?.()
let after = before
for (let i = 0; i < 100 && after >= before; i++) {
  await new Promise((r) => setTimeout(r, 20))
  after = await streamsNow()
}
check('a cancelled stream stops its producer on the server', after === before - 1, { before, after })
const still = await b.social.getSocialSettings({})
check('connection usable after cancelling a stream', still.response?.$case === 'ok', still)
await bBlocks.iterator.return?.()

// Documented errors with the official client: an unknown module, and a bad auth frame (3003).
const d = await connect()
const client = d.client
let unknownModule = null
try {
  await loadService(await client.createPort('other'), { ...SocialServiceDefinition, name: 'NoSuchService', fullName: 'x.NoSuchService' }).getSocialSettings({})
} catch (e) {
  unknownModule = String(e.message ?? e)
}
check('unknown module is a remote error', unknownModule !== null, unknownModule)
const bad = new WebSocket(url)
await new Promise((r) => bad.once('open', r))
bad.send(JSON.stringify({ 'x-identity-auth-chain-0': 'garbage' }))
const code = await new Promise((r) => bad.once('close', (c) => r(c)))
check('bad auth frame closes with 3003', code === 3003, code)
d.ws.close()
a.ws.close()
b.ws.close()
out({ done: true })
process.exit(0)
