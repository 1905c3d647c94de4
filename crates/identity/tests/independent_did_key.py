"""Ed25519 keys and their did:key from an implementation independent of warden.

Keys come from the `cryptography` package (OpenSSL); the DID is computed here
with a base58btc encoder written out below. Prints one JSON object per line:
{"seed": hex, "public": hex, "pem": PKCS#8 PEM, "did": did:key}.
Exits non-zero if `cryptography` is missing.
"""
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58btc(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = ALPHABET[r] + out
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + out


count = int(sys.argv[1]) if len(sys.argv) > 1 else 8
for _ in range(count):
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    did = "did:key:z" + base58btc(b"\xed\x01" + public)
    print(json.dumps({"seed": seed.hex(), "public": public.hex(), "pem": pem, "did": did}))
