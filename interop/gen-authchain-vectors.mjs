// Generates the signed-fetch test vectors of crates/authchain/tests/vectors/authchain.json with
// the official npm packages, and derives each expected verdict from the official verifier.
//
//   node interop/gen-authchain-vectors.mjs > crates/authchain/tests/vectors/authchain.json
//   node interop/gen-authchain-vectors.mjs --check crates/authchain/tests/vectors/authchain.json
//
// Deterministic: fixed throwaway keys, fixed timestamps, a pinned verifier clock
// (verify_at_ms) and RFC 6979 signatures, so a re-run prints the same bytes as long as the
// package versions in package-lock.json stay the same (the file records them) and Node's date
// parser reads the E* texts the same way (checked with Node 20). `--check` regenerates and
// fails when the committed file differs; scripts/test runs it.
//
// How the verdicts are obtained (also written into the file, per vector, as `derivation`):
// - the chain itself is judged by @dcl/crypto's Authenticator.validateSignature with the clock
//   passed explicitly (dateToValidateExpirationInMillis = verify_at_ms) and no Ethereum
//   provider (contract-wallet links therefore fail, as on a server without one);
// - the signed-fetch framing around it (header names, >= 2 links, timestamp and metadata
//   parsing, the +/-60 s window in both directions, the payload text in both the current and
//   the legacy format, the `signer == dcl:explorer` rule of GET /private-messages/token) is
//   the middleware's logic re-expressed below in a few lines, since the middleware packages are
//   not dependencies of this project; `reference()` is that re-expression.
// - where this project deliberately answers differently from the reference, the vector says so
//   in `deviation` and carries both verdicts (`reference` and `expected`).
process.env.TZ = 'UTC' // date-times without an offset are local time in JavaScript: pin it.

import { readFileSync } from 'node:fs'
import { Authenticator } from '@dcl/crypto'
import { SigningKey, computeAddress } from 'ethers'

const version = (pkg) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url), 'utf8')).version

// ---- fixed inputs ----------------------------------------------------------------------------
// Throwaway keys, used only by these vectors.
const OWNER_KEY = '0xfedb9e35790d9f85f2289462a339506f3363c65881adde4a18105738017e0efb'
const EPHEMERAL_KEY = '0xac2ebf4dc847043b8595bfbe8ac84bdb10dee57c1ac74d824121597962ad220c'
const OTHER_KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d'
const TS = 1795674102915 // x-identity-timestamp of the signed requests
const NOW = TS + 1000 // verify_at_ms: the verifier's clock
const EXPIRATION = new Date(TS + 30 * 24 * 3600 * 1000) // ephemeral key expiration
const WINDOW_MS = 60_000
const TOKEN_PATH = '/private-messages/token'
const META = JSON.stringify({ signer: 'dcl:explorer', intent: 'dcl:explorer:comms-handshake' })

const ident = (privateKey) => ({
  privateKey,
  publicKey: new SigningKey(privateKey).publicKey,
  address: computeAddress(privateKey),
})
const owner = ident(OWNER_KEY)
const ephemeral = ident(EPHEMERAL_KEY)
const other = ident(OTHER_KEY)

// ---- building blocks, all through @dcl/crypto -----------------------------------------------
const sign = (who, message) => Authenticator.createSignature(who, message)
const hex = (bytes) => '0x' + Buffer.from(bytes).toString('hex')
const ephemeralText = (address, expirationText) =>
  `Decentraland Login\nEphemeral address: ${address}\nExpiration: ${expirationText}`
const link = (type, payload, signature) => ({ type, payload, signature })
const signerLink = (address = owner.address) => link('SIGNER', address, '')
const ephemeralLink = (expirationText = EXPIRATION.toISOString(), by = owner, address = ephemeral.address) =>
  link('ECDSA_EPHEMERAL', ephemeralText(address, expirationText), sign(by, ephemeralText(address, expirationText)))
const finalLink = (payload, by = ephemeral) => link('ECDSA_SIGNED_ENTITY', payload, sign(by, payload))

const payloadV6 = (method, path, ts, meta) => [method.toLowerCase(), path.toLowerCase(), ts, meta].join(':')
const payloadLegacy = (method, path, ts, meta) => [method, path, ts, meta].join(':').toLowerCase()

const NO_METADATA = null // no x-identity-metadata header at all

function headers(chain, ts = String(TS), meta = META) {
  const h = {}
  chain.forEach((l, i) => (h[`x-identity-auth-chain-${i}`] = typeof l === 'string' ? l : JSON.stringify(l)))
  h['x-identity-timestamp'] = ts
  if (meta !== NO_METADATA) h['x-identity-metadata'] = meta
  return h
}

/// A correctly signed 3-link request for GET `path` with the given ephemeral link.
function signedRequest({ path = TOKEN_PATH, ts = TS, meta = META, eph = ephemeralLink(), format = 'v6' } = {}) {
  const payload = (format === 'v6' ? payloadV6 : payloadLegacy)('GET', path, String(ts), meta ?? '')
  return {
    request: { method: 'GET', path, headers: headers([signerLink(), eph, finalLink(payload)], String(ts), meta) },
    signed_payload: payload,
    signed_format: format,
  }
}

// secp256k1 group order, for the malleated (high-S) twin of a signature.
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
function highS(sig) {
  const r = sig.slice(2, 66)
  const s = BigInt('0x' + sig.slice(66, 130))
  const v = parseInt(sig.slice(130, 132), 16)
  return '0x' + r + (N - s).toString(16).padStart(64, '0') + (v === 27 ? '1c' : '1b')
}

// ---- the reference verifier ------------------------------------------------------------------
// The signed-fetch middleware re-expressed (see the header comment); the chain verdict itself
// is @dcl/crypto's. Returns { verdict: 'ok' | status, message }.
async function reference(req, now, explorerRule) {
  const h = req.headers
  const chain = []
  try {
    for (let i = 0; h[`x-identity-auth-chain-${i}`] !== undefined; i++) {
      chain.push(JSON.parse(h[`x-identity-auth-chain-${i}`]))
    }
  } catch (e) {
    return { verdict: 400, message: `Invalid chain format: ${e.message}` }
  }
  if (chain.length < 2) return { verdict: 400, message: 'Invalid Auth Chain' }
  const tsText = h['x-identity-timestamp']
  const ts = Number(tsText)
  if (!tsText || !Number.isFinite(ts)) return { verdict: 400, message: `Invalid chain timestamp: ${tsText}` }
  const metaRaw = h['x-identity-metadata'] ?? ''
  let meta = {}
  try {
    meta = metaRaw ? JSON.parse(metaRaw) : {}
  } catch (e) {
    return { verdict: 400, message: `Invalid chain metadata: ${e.message}` }
  }
  if (ts + WINDOW_MS < now) return { verdict: 401, message: 'Expired signature' }
  if (ts > now + WINDOW_MS) return { verdict: 401, message: 'Signature timestamp is too far in the future' }
  const candidates = [payloadV6(req.method, req.path, tsText, metaRaw), payloadLegacy(req.method, req.path, tsText, metaRaw)]
  let first
  for (const payload of candidates) {
    const result = await Authenticator.validateSignature(payload, chain, null, now)
    if (result.ok) {
      if (explorerRule && !(meta && meta.signer === 'dcl:explorer')) {
        return { verdict: 400, message: `Invalid metadata content: ${metaRaw || '{}'}` }
      }
      return { verdict: 'ok', message: null, auth: String(chain[0].payload).toLowerCase() }
    }
    first ??= result.message
  }
  return { verdict: 401, message: `Invalid signature: ${first}` }
}

// ---- the cases -------------------------------------------------------------------------------
const cases = []
const add = (name, description, built, extra = {}) => cases.push({ name, description, ...built, ...extra })

add('P1_main', 'GET /private-messages/token, explorer metadata, 3-link chain (current format; the legacy text is the same because everything is lower case).', signedRequest())
const upperMeta = JSON.stringify({ signer: 'dcl:explorer', intent: 'dcl:explorer:comms-handshake', origin: 'https://play.decentraland.org', deviceIdentifier: 'Device-ABC-123' })
add('P2_uppercase_metadata_v6', 'Metadata with upper-case letters signed in the current format (metadata verbatim).', signedRequest({ meta: upperMeta }))
add('P3_uppercase_metadata_legacy', 'The same metadata signed in the legacy format (the whole text lower-cased).', signedRequest({ meta: upperMeta, format: 'legacy' }))
{
  const payload = payloadV6('GET', TOKEN_PATH, String(TS), META)
  add('P4_two_link_chain', 'No ephemeral key: SIGNER then ECDSA_SIGNED_ENTITY signed by the owner.', {
    request: { method: 'GET', path: TOKEN_PATH, headers: headers([signerLink(), finalLink(payload, owner)]) },
    signed_payload: payload, signed_format: 'v6',
  })
}
{
  const r = signedRequest()
  const fin = JSON.parse(r.request.headers['x-identity-auth-chain-2'])
  const v = parseInt(fin.signature.slice(130), 16) - 27
  fin.signature = fin.signature.slice(0, 130) + v.toString(16).padStart(2, '0')
  r.request.headers['x-identity-auth-chain-2'] = JSON.stringify(fin)
  add('P5_v_is_0_or_1', 'Final signature with v = 0/1 instead of 27/28.', r)
}
{
  const payload = payloadV6('GET', TOKEN_PATH, String(TS), META)
  const text = ephemeralText(ephemeral.address.toLowerCase(), EXPIRATION.toISOString())
  const chain = [signerLink(owner.address.toLowerCase()), link('ECDSA_EPHEMERAL', text, sign(owner, text)), finalLink(payload)]
  add('P6_lowercase_addresses', 'SIGNER payload and ephemeral address in lower case (re-signed); addresses compare case-insensitively.', {
    request: { method: 'GET', path: TOKEN_PATH, headers: headers(chain) }, signed_payload: payload, signed_format: 'v6',
  })
}
add('P7_no_metadata_header', 'No x-identity-metadata header: the signed text ends with ":" and the metadata is {}; the explorer rule fails.', signedRequest({ meta: NO_METADATA }))
{
  const r = signedRequest()
  r.request.path = '/Private-Messages/Token'
  add('P8_uppercase_method_and_path_at_verifier', 'The verifier sees the path in other letter case: both formats fold method and path, so it still verifies.', r)
}
add('P9_social_ws_handshake', 'The social service WebSocket handshake: GET / with metadata {} (the explorer rule fails, as it should for this route).', signedRequest({ path: '/', meta: '{}' }))
{
  const r = signedRequest()
  const fin = JSON.parse(r.request.headers['x-identity-auth-chain-2'])
  const i = 2 + 64 + 10 // a nibble inside s
  fin.signature = fin.signature.slice(0, i) + (fin.signature[i] === '0' ? '1' : '0') + fin.signature.slice(i + 1)
  r.request.headers['x-identity-auth-chain-2'] = JSON.stringify(fin)
  add('N1_tampered_signature', 'One hex digit inside s of the final signature changed.', r)
}
add('N2_expired_ephemeral', 'The ephemeral key expired 60 s before the verifier clock.', signedRequest({ eph: ephemeralLink(new Date(NOW - 60_000).toISOString()) }))
{
  const r = signedRequest()
  r.request.path = '/private-messages/other'
  add('N3_wrong_path', 'Signed for /private-messages/token, presented on /private-messages/other.', r)
}
add('N4_stale_timestamp', 'x-identity-timestamp 61 s before the verifier clock (window 60 s), correctly signed.', signedRequest({ ts: NOW - 61_000 }))
add('N5_future_timestamp', 'x-identity-timestamp 120 s after the verifier clock, correctly signed.', signedRequest({ ts: NOW + 120_000 }))
{
  const r = signedRequest()
  r.request.headers['x-identity-metadata'] = META.replace('"signer"', '"Signer"')
  add('N6_metadata_recased_after_signing', 'Signed {"signer":…}, delivered {"Signer":…}: the legacy text (lower-cased) still matches; the explorer rule fails.', r)
}
add('N7_scene_signer', 'Valid signature, metadata signer "decentraland-kernel-scene": the explorer rule fails.', signedRequest({ meta: JSON.stringify({ signer: 'decentraland-kernel-scene' }) }))
{
  const payload = payloadV6('GET', TOKEN_PATH + '?foo=bar', String(TS), META)
  add('N8_query_string_signed', 'The client signed the path with its query string; verifiers use the URL path only.', {
    request: { method: 'GET', path: TOKEN_PATH, headers: headers([signerLink(), ephemeralLink(), finalLink(payload)]) },
    signed_payload: payload, signed_format: 'v6',
  })
}
{
  const r = signedRequest()
  delete r.request.headers['x-identity-auth-chain-1']
  delete r.request.headers['x-identity-auth-chain-2']
  add('N9_single_link', 'Only x-identity-auth-chain-0.', r)
}
{
  const r = signedRequest()
  r.request.headers['x-identity-auth-chain-1'] = '{not json'
  add('N10_malformed_link_json', 'x-identity-auth-chain-1 is not JSON.', r)
}
{
  const r = signedRequest()
  r.request.headers['x-identity-timestamp'] = 'abc'
  add('N11_non_numeric_timestamp', 'x-identity-timestamp = "abc".', r)
}
{
  const r = signedRequest()
  const fin = JSON.parse(r.request.headers['x-identity-auth-chain-2'])
  fin.signature = highS(fin.signature)
  r.request.headers['x-identity-auth-chain-2'] = JSON.stringify(fin)
  add('N12_high_s_signature', 'The final signature replaced by its malleated twin (s -> n - s, v flipped); the reference accepts it.', r)
}
add('N13_ephemeral_signed_by_other_key', 'SIGNER names the owner, but another key signed the delegation.', signedRequest({ eph: ephemeralLink(EXPIRATION.toISOString(), other) }))
{
  const payload = payloadV6('GET', TOKEN_PATH, String(TS), META)
  add('N14_final_signed_by_owner_not_ephemeral', '3-link chain whose last link is signed by the owner instead of the ephemeral key.', {
    request: { method: 'GET', path: TOKEN_PATH, headers: headers([signerLink(), ephemeralLink(), finalLink(payload, owner)]) },
    signed_payload: payload, signed_format: 'v6',
  })
}
{
  const payload = payloadV6('GET', TOKEN_PATH, String(TS), META)
  add('N15_signer_not_first', 'Links reordered so that SIGNER is not first.', {
    request: { method: 'GET', path: TOKEN_PATH, headers: headers([ephemeralLink(), signerLink(), finalLink(payload)]) },
    signed_payload: payload, signed_format: 'v6',
  })
}
{
  const payload = payloadV6('GET', TOKEN_PATH, String(TS), META)
  const text = ephemeralText(ephemeral.address, EXPIRATION.toISOString())
  const chain = [signerLink(), link('ECDSA_EIP_1654_EPHEMERAL', text, sign(owner, text)), finalLink(payload)]
  add('C1_contract_wallet_without_validator', 'A contract-wallet (EIP-1654) delegation, verified with no contract-wallet validator (no Ethereum provider in the reference): refused.', {
    request: { method: 'GET', path: TOKEN_PATH, headers: headers(chain) }, signed_payload: payload, signed_format: 'v6',
  })
}

// Ephemeral-key `Expiration:` texts: how JavaScript's date parser reads them decides the verdict.
const iso = (ms) => new Date(ms).toISOString()
const noZone = (ms) => iso(ms).slice(0, -1) // local date-time: no offset
const withOffset = (ms, offset) => iso(ms).slice(0, -1) + offset
const expirations = [
  ['E1_expiration_date_only', '2099-01-01', 'Date-only form YYYY-MM-DD (UTC midnight).'],
  ['E2_expiration_year_only', '2099', 'Year-only form YYYY.'],
  ['E3_expiration_year_month', '2099-01', 'Year-month form YYYY-MM.'],
  ['E4_expiration_minutes_z', '2099-01-01T00:00Z', 'Date-time with hours and minutes only, Z.'],
  ['E5_expiration_offset', '2099-01-01T00:00:00.000+02:00', 'Date-time with a +HH:mm offset.'],
  ['E6_expiration_expanded_year', '+002099-01-01T00:00:00.000Z', 'Expanded year +YYYYYY.'],
  ['E7_expiration_no_offset', '2099-01-01T00:00:00', 'Date-time without offset (local time in JavaScript; generated and read as UTC).'],
  ['E8_expiration_date_only_past', '2026-01-01', 'Date-only form in the past: expired.'],
  ['E9_expiration_offset_moves_it_past', withOffset(NOW + 3600_000, '+02:00'), 'One hour after the clock as written, but the +02:00 offset puts it one hour before: expired.'],
  ['E10_expiration_no_offset_near_now', noZone(NOW + 1800_000), 'Thirty minutes after the clock, without offset (the shape unity-explorer\'s guest login writes, C# {expiration:s} of a UTC time): valid when read as UTC; a reference server one hour or more east of UTC would call it expired.'],
  ['E11_expiration_equals_clock', iso(NOW), 'Expiration exactly equal to the verifier clock.'],
  ['E12_expiration_one_ms_after_clock', iso(NOW + 1), 'Expiration one millisecond after the verifier clock.'],
  ['E13_expiration_invalid_text', 'soon', 'Not a date at all: JavaScript reads Invalid Date (NaN).'],
  ['E14_expiration_day_rolls_over', '2099-02-30', 'Day 30 of February: JavaScript (V8) rolls it over into March.'],
  ['E15_expiration_end_of_day_24h', iso(NOW).slice(0, 10) + 'T24:00:00Z', 'T24:00:00 of the clock\'s day, i.e. the next midnight.'],
  ['E16_expiration_slashes', '2099/01/01', 'Not the ECMAScript date-time format: V8 reads it with its lenient fallback parser.'],
  ['E17_expiration_to_string_form', new Date(Date.UTC(2099, 0, 1)).toString(), 'Date.prototype.toString() output (what very early @dcl/crypto versions wrote): outside the ISO format, read by V8\'s fallback parser.'],
]
{
  // Line ends: the reference removes every \r from the delegation text before reading it and
  // before recovering its signer.
  const crlf = ephemeralText(ephemeral.address, EXPIRATION.toISOString()).replace(/\n/g, '\r\n')
  const lf = crlf.replace(/\r/g, '')
  add('E18_crlf_delegation_signed_as_sent', 'Delegation text with CRLF line ends, signed as sent: the reference verifies the text without CRs, so the signer does not match.',
    signedRequest({ eph: link('ECDSA_EPHEMERAL', crlf, sign(owner, crlf)) }))
  add('E19_crlf_delegation_signed_without_cr', 'Delegation text with CRLF line ends whose signature covers the text without CRs: the reference accepts it.',
    signedRequest({ eph: link('ECDSA_EPHEMERAL', crlf, sign(owner, lf)) }))
}
const DEVIATIONS = {
  E16_expiration_slashes: 'We read only the ECMAScript date-time string format (ISO-8601); texts that V8 accepts through its implementation-defined fallback parser are refused like an unparsable date (401). Current clients write toISOString() or C# {expiration:s}, both ISO.',
  E17_expiration_to_string_form: 'As E16: Date.prototype.toString() output is not ISO-8601; refused (401).',
}
for (const [name, text, description] of expirations) {
  add(name, `Expiration: ${JSON.stringify(text)}. ${description}`, signedRequest({ eph: ephemeralLink(text) }), { expiration_text: text })
}

// ---- verdicts --------------------------------------------------------------------------------
const vectors = []
for (const c of cases) {
  const crypto = await reference(c.request, NOW, false)
  const gatekeeper = await reference(c.request, NOW, true)
  const ref = { crypto: crypto.verdict, gatekeeper_token: gatekeeper.verdict, message: gatekeeper.message ?? crypto.message }
  const deviation = DEVIATIONS[c.name]
  const expected = deviation ? { crypto: 401, gatekeeper_token: 401 } : { crypto: ref.crypto, gatekeeper_token: ref.gatekeeper_token }
  vectors.push({
    name: c.name,
    description: c.description,
    request: c.request,
    verify_at_ms: NOW,
    signed_payload: c.signed_payload,
    signed_format: c.signed_format,
    ...(c.expiration_text !== undefined ? { expiration_text: c.expiration_text } : {}),
    expected,
    reference: ref,
    derivation: deviation ? 'deviation' : 'reference',
    ...(deviation ? { deviation } : {}),
  })
}

const primitivesMessage = ephemeralText(ephemeral.address, EXPIRATION.toISOString())
const finalPayload = payloadV6('GET', TOKEN_PATH, String(TS), META)
const doc = {
  about:
    'Signed-fetch (ADR-44 auth chain) test vectors for crates/authchain, generated by interop/gen-authchain-vectors.mjs with the official npm packages. Do not edit by hand: re-run the script. The private keys are throwaway test keys. Verify every vector with the clock pinned to verify_at_ms (unix ms).',
  generator: {
    script: 'interop/gen-authchain-vectors.mjs',
    packages: { '@dcl/crypto': version('@dcl/crypto'), ethers: version('ethers') },
    time_zone: 'UTC (process.env.TZ)',
  },
  derivation: {
    reference:
      "expected = what the reference says: the chain judged by @dcl/crypto's Authenticator.validateSignature(payload, chain, provider = null, dateToValidateExpirationInMillis = verify_at_ms), tried with the current-format payload and then the legacy one; the signed-fetch framing around it (headers, >= 2 links, timestamp and metadata parsing, the window, the explorer rule) re-expressed from the reference middleware in the generator.",
    deviation: 'expected differs from the reference on purpose; the vector says why in `deviation` and keeps the reference verdict in `reference`.',
  },
  conventions: {
    header_chain_prefix: 'x-identity-auth-chain-',
    header_timestamp: 'x-identity-timestamp',
    header_metadata: 'x-identity-metadata',
    link_json_key_order: ['type', 'payload', 'signature'],
    payload_v6: "[method.toLowerCase(), pathname.toLowerCase(), timestamp, metadataRaw].join(':')",
    payload_legacy: "[method, pathname, timestamp, metadataRaw].join(':').toLowerCase()",
    window_ms: WINDOW_MS,
  },
  keys: {
    owner: { private_key: OWNER_KEY, address: owner.address, public_key_uncompressed: owner.publicKey },
    ephemeral: { private_key: EPHEMERAL_KEY, address: ephemeral.address, public_key_uncompressed: ephemeral.publicKey },
    other: { private_key: OTHER_KEY, address: other.address },
    ephemeral_expiration: EXPIRATION.toISOString(),
  },
  primitives: {
    ephemeral_message: primitivesMessage,
    ephemeral_message_utf8_len: Buffer.byteLength(primitivesMessage),
    ephemeral_message_eip191_hash: hex(Authenticator.createEthereumMessageHash(primitivesMessage)),
    ephemeral_signature_by_owner: sign(owner, primitivesMessage),
    final_payload: finalPayload,
    final_payload_eip191_hash: hex(Authenticator.createEthereumMessageHash(finalPayload)),
    final_signature_by_ephemeral: sign(ephemeral, finalPayload),
    notes: 'signature = 0x, r (32 bytes), s (32 bytes), v (1 byte, 27 + recovery id): 132 hex characters; hash = keccak256("\\x19Ethereum Signed Message:\\n" + UTF-8 length in decimal + message); RFC 6979, low S.',
  },
  expected_columns: {
    crypto: "'ok' or the HTTP status: the chain verifies under either payload format, the timestamp is within +/-60 s of verify_at_ms, SIGNER is first, the ephemeral key has not expired, the last link is signed by the ephemeral key. 400 malformed, 401 not authentic or not current.",
    gatekeeper_token: "crypto, then the rule of GET /private-messages/token: the metadata signer must be 'dcl:explorer' (else 400).",
  },
  vectors,
}
const text = JSON.stringify(doc, null, 1) + '\n'

const checkIndex = process.argv.indexOf('--check')
if (checkIndex >= 0) {
  const file = process.argv[checkIndex + 1]
  if (readFileSync(file, 'utf8') !== text) {
    console.error(`${file} differs from what the generator makes now; re-run it and review the diff`)
    process.exit(1)
  }
  console.error(`${file} is up to date (${vectors.length} vectors)`)
} else {
  process.stdout.write(text)
}
