#!/usr/bin/env python3
"""An independent Agora client, written from docs/wire-format.md alone.

    python3 sign_transfer.py check docs/test-vectors.json
        rebuild every test vector from its inputs and compare byte for byte
    python3 sign_transfer.py send RPC_URL SEED_HEX DEST_SS58 AMOUNT_RAO
        sign a transfer with the given 32-byte seed and submit it, then wait for finality

Needs: pip install blake3 cryptography
"""
import json
import struct
import sys
import time
import urllib.request

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives import serialization
import hashlib

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(s):
    n = 0
    for c in s:
        n = n * 58 + B58.index(c)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(s) - len(s.lstrip("1"))) + raw


def b58encode(b):
    n = int.from_bytes(b, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(b) - len(b.lstrip(b"\0"))) + out


def ss58_encode(pub):
    body = bytes([42]) + pub
    return b58encode(body + hashlib.blake2b(b"SS58PRE" + body).digest()[:2])


def ss58_decode(addr):
    raw = b58decode(addr)
    assert len(raw) == 35 and raw[0] == 42, "not a prefix-42 SS58 address"
    assert hashlib.blake2b(b"SS58PRE" + raw[:33]).digest()[:2] == raw[33:], "bad checksum"
    return raw[1:33]


def keypair(seed):
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sk, pub


def unsigned_transfer(chain_id, signer, nonce, dest, amount, tip):
    return struct.pack("<Q", chain_id) + signer + struct.pack("<Q", nonce) + struct.pack("<I", 0) + dest + struct.pack("<Q", amount) + struct.pack("<Q", tip)


def sign(sk, unsigned):
    payload = blake3.blake3(b"agora/tx/v1" + unsigned).digest()
    sig = sk.sign(payload)
    return payload, sig, bytes([1]) + unsigned + sig


def check(path):
    v = json.load(open(path))
    sk, pub = keypair(bytes.fromhex(v["signer"]["seed_hex"]))
    assert pub.hex() == v["signer"]["public_key_hex"]
    assert ss58_encode(pub) == v["signer"]["ss58"]
    for t in v["transfers"]:
        dest = ss58_decode(t["dest_ss58"])
        assert "0x" + dest.hex() == t["dest_hex"]
        unsigned = unsigned_transfer(t["chain_id"], pub, t["nonce"], dest, t["amount_rao"], t["tip_rao"])
        assert unsigned.hex() == t["unsigned_tx_hex"], "unsigned encoding differs"
        payload, sig, signed = sign(sk, unsigned)
        assert payload.hex() == t["signing_payload_hex"], "signing payload differs"
        assert sig.hex() == t["signature_hex"], "signature differs"
        assert signed.hex() == t["signed_tx_hex"] and len(signed) == t["signed_tx_len"]
        assert blake3.blake3(signed).hexdigest() == t["tx_hash_hex"], "hash differs"
    print(f"ok: {len(v['transfers'])} transfer vectors reproduced independently")
    if "block" in v:
        check_block(v["block"], v["transfers"][0], sk, pub)
        print("ok: header, certificates and block reproduced independently")


def encode_cert(c):
    """FinalityCert = height u64, round u32, block_hash, votes Vec<(authority, signature)>."""
    votes = b"".join(bytes.fromhex(x["authority_hex"]) + bytes.fromhex(x["signature_hex"]) for x in c["votes"])
    return (struct.pack("<QI", c["height"], c["round"]) + bytes.fromhex(c["block_hash_hex"])
            + struct.pack("<Q", len(c["votes"])) + votes)


def check_cert(c, chain_id, pub):
    # Vote payload: blake3("agora/vote/v1" || chain_id u64 || 1u8 || height u64 || round u32 || 1u8 || block_hash)
    payload = blake3.blake3(b"agora/vote/v1" + struct.pack("<QBQIB", chain_id, 1, c["height"], c["round"], 1)
                            + bytes.fromhex(c["block_hash_hex"])).digest()
    assert payload.hex() == c["vote_payload_hex"], "vote payload differs"
    for vote in c["votes"]:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(vote["authority_hex"])).verify(
            bytes.fromhex(vote["signature_hex"]), payload)
    encoded = encode_cert(c)
    assert encoded.hex() == c["cert_hex"], "certificate encoding differs"
    digest = blake3.blake3(b"agora/cert/v1" + encoded).digest()
    assert digest.hex() == c["cert_hash_hex"], "certificate hash differs"
    return encoded, digest


def check_block(b, first_transfer, sk, pub):
    h = b["header"]
    parent_cert, parent_cert_hash = check_cert(b["parent_certificate"], h["chain_id"], pub)
    assert parent_cert_hash.hex() == h["parent_cert_hex"], "header does not commit to the parent certificate"
    signed = bytes.fromhex(first_transfer["signed_tx_hex"])
    tx_root = blake3.blake3(b"agora/txroot/v1" + struct.pack("<Q", 1) + blake3.blake3(signed).digest()).digest()
    assert tx_root.hex() == h["tx_root_hex"], "tx root differs"
    header = (struct.pack("<QQ", h["chain_id"], h["height"]) + bytes.fromhex(h["parent_hex"])
              + struct.pack("<QQ", h["view"], h["timestamp_ms"]) + bytes.fromhex(h["proposer_hex"])
              + tx_root + bytes.fromhex(h["state_root_hex"]) + parent_cert_hash)
    assert header.hex() == h["header_hex"], "header encoding differs"
    header_hash = blake3.blake3(b"agora/header/v1" + header).digest()
    assert header_hash.hex() == h["header_hash_hex"], "header hash differs"
    assert b["certificate"]["block_hash_hex"] == header_hash.hex(), "the certificate is not for this block"
    check_cert(b["certificate"], h["chain_id"], pub)
    # Block = header, txs Vec<SignedTransaction>, parent_cert Option<FinalityCert>.
    block = header + struct.pack("<Q", 1) + signed + b"\x01" + parent_cert
    assert block.hex() == b["block_hex"], "block encoding differs"


def rpc(url, method, params):
    req = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    r = json.load(urllib.request.urlopen(urllib.request.Request(url, req, {"Content-Type": "application/json"})))
    if "error" in r:
        raise SystemExit(f"{method}: {r['error']}")
    return r["result"]


def send(url, seed_hex, dest_ss58, amount):
    sk, pub = keypair(bytes.fromhex(seed_hex.removeprefix("0x")))
    info = rpc(url, "chain_info", None)
    nonce = rpc(url, "account_info", {"address": ss58_encode(pub)})["nonce"]
    _, _, signed = sign(sk, unsigned_transfer(info["chain_id"], pub, nonce, ss58_decode(dest_ss58), int(amount), 0))
    h = rpc(url, "tx_submit", {"tx": "0x" + signed.hex()})["hash"]
    for _ in range(600):
        try:
            t = rpc(url, "chain_tx", {"hash": h})
            if t["status"] in ("finalized", "dropped"):
                print(json.dumps(t))
                return
        except SystemExit:
            pass
        time.sleep(0.1)
    raise SystemExit("not finalized in 60 s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["check"]:
        check(sys.argv[2])
    elif sys.argv[1:2] == ["send"]:
        send(*sys.argv[2:6])
    else:
        raise SystemExit(__doc__)
