"""Decodes koppel payloads with fastavro, finding each writer schema by the fingerprint fastavro
computes itself (never by koppel's bucket keys).

Usage: decode_with_fastavro.py DIR, where DIR holds schemas/*.avsc (the schemas bucket) and
payloads/*.bin (raw stream messages). Prints one tab-separated line per payload: file, writer
schema full name, event id, employer key, entity id, revision, and the first salary amount
found (or "-"). Exits non-zero on any payload it cannot decode.
"""

import io
import json
import pathlib
import sys

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form


def salary_of(record):
    employment = record.get("employment")
    if employment and employment.get("salary"):
        return str(employment["salary"]["amount"]["amount"])
    return "-"


def main(directory):
    by_fingerprint = {}
    for path in sorted((directory / "schemas").glob("*.avsc")):
        schema = parse_schema(json.loads(path.read_text()))
        canonical = to_parsing_canonical_form(schema)
        by_fingerprint[fingerprint(canonical, "CRC-64-AVRO")] = schema
    for path in sorted((directory / "payloads").glob("*.bin")):
        payload = path.read_bytes()
        if payload[:2] != b"\xc3\x01":
            sys.exit(f"{path.name}: not Avro single-object encoded")
        schema = by_fingerprint.get(payload[2:10].hex())
        if schema is None:
            sys.exit(f"{path.name}: fastavro knows no schema with fingerprint {payload[2:10].hex()}")
        datum = io.BytesIO(payload[10:])
        record = fastavro.schemaless_reader(datum, schema, None)
        if datum.read():
            sys.exit(f"{path.name}: trailing bytes after the datum")
        header = record["header"]
        print(
            "\t".join(
                [
                    path.name,
                    schema["name"],
                    str(header["event_id"]),
                    header["employer_key"],
                    header["entity_id"],
                    str(header["revision"]),
                    salary_of(record),
                ]
            )
        )


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
