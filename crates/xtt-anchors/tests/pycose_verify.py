"""Verifies a COSE_Sign1 (detached payload) with pycose, an implementation independent of ours.

usage: pycose_verify.py COSE_SIGN1_FILE DETACHED_PAYLOAD_FILE SEC1_PUBLIC_KEY_FILE
Prints the algorithm and 'verified'; exits 1 (printing 'NOT verified') if pycose checks the
signature and finds it wrong, 2 on bad input, 3 if pycose raises while verifying (printing the
error to stderr): a caller can tell a refused signature from a failure to check one.
"""
import sys
from collections.abc import Mapping

from pycose.headers import Algorithm
from pycose.keys.curves import P256
from pycose.keys.ec2 import EC2Key
from pycose.messages import CoseMessage, Sign1Message
import cbor2


def decode_sign1(data: bytes) -> Sign1Message:
    """CoseMessage.decode, tolerating cbor2 >= 6 (which returns arrays as tuples and maps as
    immutable mappings, forms pycose 1.1 does not expect)."""
    try:
        return CoseMessage.decode(data)
    except TypeError:
        item = cbor2.loads(data)
        if not isinstance(item, cbor2.CBORTag) or item.tag != 18:
            raise
        fields = [dict(f) if isinstance(f, Mapping) else f for f in item.value]
        return Sign1Message.from_cose_obj(fields, True)


def main() -> int:
    cose, payload, pub = (open(p, "rb").read() for p in sys.argv[1:4])
    if len(pub) != 65 or pub[0] != 4:
        print("public key must be 65-byte uncompressed SEC1", file=sys.stderr)
        return 2
    try:
        msg = decode_sign1(cose)
    except Exception as e:
        print(f"cannot decode COSE_Sign1: {e!r}", file=sys.stderr)
        return 2
    if not isinstance(msg, Sign1Message):
        print(f"not a COSE_Sign1: {type(msg).__name__}", file=sys.stderr)
        return 2
    print("alg", msg.get_attr(Algorithm).fullname)
    msg.key = EC2Key(crv=P256, x=pub[1:33], y=pub[33:65])
    try:
        ok = msg.verify_signature(detached_payload=payload)
    except Exception as e:  # pycose raises for some malformed signatures
        print(f"verification error: {e!r}", file=sys.stderr)
        return 3
    print("verified" if ok else "NOT verified")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
