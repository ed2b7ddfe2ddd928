// Signs requests with the official packages.
//
//   node signed-fetch.mjs fetch <METHOD> <URL> <METADATA_JSON> [OWNER_KEY]
//     sends the request with decentraland-crypto-fetch's signedFetch and prints
//     {"status":…, "body":…, "address":"0x…"} as one JSON line.
//   node signed-fetch.mjs headers <METHOD> <URL> <METADATA_JSON> [OWNER_KEY] [v6|legacy]
//     prints the signed-fetch headers (made with @dcl/crypto's Authenticator.signPayload) as one
//     JSON object, plus "address"; the caller sends (or tampers with) them.
import cryptoFetch from 'decentraland-crypto-fetch'
import { Authenticator } from '@dcl/crypto'
import { createIdentity } from './identity.mjs'

// The package is CommonJS with `exports.default = signedFetchFactory()`.
const signedFetch = cryptoFetch.default ?? cryptoFetch

const [mode, method, url, metadataJson, ownerKey, format = 'legacy'] = process.argv.slice(2)
if (!mode || !method || !url || metadataJson === undefined) {
  console.error('usage: signed-fetch.mjs fetch|headers METHOD URL METADATA_JSON [OWNER_KEY] [v6|legacy]')
  process.exit(2)
}
const metadata = JSON.parse(metadataJson)
const { owner, identity } = await createIdentity(ownerKey)
const address = owner.address.toLowerCase()

if (mode === 'fetch') {
  const res = await signedFetch(url, { method, identity, metadata })
  const body = await res.text()
  console.log(JSON.stringify({ status: res.status, body, address }))
} else if (mode === 'headers') {
  const path = new URL(url).pathname
  const timestamp = String(Date.now())
  const data = JSON.stringify(metadata)
  const payload =
    format === 'v6'
      ? [method.toLowerCase(), path.toLowerCase(), timestamp, data].join(':')
      : [method, path, timestamp, data].join(':').toLowerCase()
  const chain = Authenticator.signPayload(identity, payload)
  const headers = { address }
  chain.forEach((link, i) => (headers[`x-identity-auth-chain-${i}`] = JSON.stringify(link)))
  headers['x-identity-timestamp'] = timestamp
  headers['x-identity-metadata'] = data
  console.log(JSON.stringify(headers))
} else {
  console.error(`unknown mode ${mode}`)
  process.exit(2)
}
