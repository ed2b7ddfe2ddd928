// A Decentraland identity made with the official packages: an ethers wallet as owner and an
// ephemeral key delegated with @dcl/crypto's Authenticator.initializeAuthChain.
import { Wallet } from 'ethers'
import { Authenticator } from '@dcl/crypto'

export async function createIdentity(ownerPrivateKey, minutes = 10) {
  const owner = ownerPrivateKey ? new Wallet(ownerPrivateKey) : Wallet.createRandom()
  const eph = Wallet.createRandom()
  const ephemeral = { address: eph.address, privateKey: eph.privateKey, publicKey: eph.signingKey.publicKey }
  const identity = await Authenticator.initializeAuthChain(owner.address, ephemeral, minutes, (msg) =>
    owner.signMessage(msg)
  )
  return { owner, identity }
}
