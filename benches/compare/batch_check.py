"""Checks an AuthorizeBatch answer (a gRPC frame, as `curl -o` saves it)
against the expected decisions that batch_body.py printed, answer by
answer, and says whether the answers carry the revision:

    batch_check.py ANSWER_FILE EXPECTED_FILE

Exit 0 when every decision is the expected one. With h2load, send the same
body: each answer then has the size of the one checked (h2load's `data`
bytes divided by its requests), which the run compares.
"""
import sys

NAMES = {1: "ALLOW", 2: "EXPLICIT_DENY", 3: "IMPLICIT_DENY"}


def varint(b, i):
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return n, i


def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(b, i)
            yield number, value
        elif wire == 2:
            n, i = varint(b, i)
            yield number, b[i : i + n]
            i += n
        else:
            raise ValueError(f"wire type {wire} in an answer")


def main():
    data = open(sys.argv[1], "rb").read()
    expected = [line.strip() for line in open(sys.argv[2])]
    if len(data) < 5 or data[0] != 0:
        sys.exit("not a gRPC message frame")
    message = data[5 : 5 + int.from_bytes(data[1:5], "big")]
    decisions, revision, with_revision = [], "", 0
    for number, value in fields(message):
        if number == 1:
            answer = dict(fields(value))
            decisions.append(NAMES.get(answer.get(1, 0), "UNSPECIFIED"))
            with_revision += 2 in answer
        elif number == 2:
            revision = value.decode()
    right = sum(a == b for a, b in zip(decisions, expected))
    print(f"{len(decisions)} answers, {right} as expected; batch revision {revision!r}; "
          f"{with_revision} answers carry it; {len(data)} bytes")
    sys.exit(0 if decisions == expected else 1)


if __name__ == "__main__":
    main()
