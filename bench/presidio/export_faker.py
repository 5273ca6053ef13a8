#!/usr/bin/env python3
"""Writes crates/hoop-plugin-dlp/tests/data/faker.tsv: values from Python Faker (a generator
this project did not write), for the dlp engine's independent accuracy test
(crates/hoop-plugin-dlp/tests/independent.rs).

One `TYPE<TAB>SOURCE<TAB>value` per line: en_US phone numbers (every format Faker has,
with extensions, `001-` and `+1-` prefixes and bare 10 digits) and card numbers of every
issuer Faker knows (Maestro 12, Visa 13/16/19, Mastercard 2- and 5-series, Amex, Discover,
Diners 14, JCB 15/16). Seeded, so it is reproducible:

    /tmp/presidio-venv/bin/pip install faker
    /tmp/presidio-venv/bin/python bench/presidio/export_faker.py
"""

import os

from faker import Faker

PHONES = 1200
CARDS_PER_ISSUER = 120


def main():
    fake = Faker("en_US")
    Faker.seed(16)
    out = []
    for _ in range(PHONES):
        out.append(("PHONE_NUMBER", "faker en_US", fake.phone_number()))
    for issuer in ["maestro", "mastercard", "visa16", "visa13", "visa19", "amex", "discover",
                   "diners", "jcb15", "jcb16"]:
        for _ in range(CARDS_PER_ISSUER):
            out.append(("CREDIT_CARD_NUMBER", f"faker {issuer}",
                        fake.credit_card_number(card_type=issuer)))
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "crates", "hoop-plugin-dlp", "tests", "data", "faker.tsv")
    with open(path, "w") as f:
        f.write(f"# Python Faker {version()} (en_US, seed 16), written by bench/presidio/export_faker.py\n")
        for t, src, v in out:
            f.write(f"{t}\t{src}\t{v}\n")
    print(f"{len(out)} values -> {os.path.normpath(path)}")


def version():
    from importlib.metadata import version as v
    return v("faker")


if __name__ == "__main__":
    main()
