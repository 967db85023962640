"""The fast AA path (validated template + substitution) sends exactly what hl7apy validates, per sender shape."""

from __future__ import annotations

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message as apy_parse

from drivers.hl7.acks import read_msh
from drivers.hl7.session import AckTemplates

CASES = [
    b"MSH|^~\\&|BC-6800|LAB|LIS||20261126083000||ORU^R01|A-1|P|2.3.1||||||UNICODE UTF-8\rPID|1\r",
    b"MSH|^~\\&|MAGLUMI|SNIBE|LIS||20261126083000||OUL^R22^OUL_R22|B-2\\T\\x|P|2.5.1\rPID|1\r",
    b"MSH|^~\\&|XN|SYSMEX|LIS||20261126083000||ORU^R01|C3|T|2.4||||||8859/1\rPID|1\r",
]


@pytest.mark.parametrize("raw", CASES)
def test_template_ack_is_valid_and_echoes_the_control_id(raw: bytes) -> None:
    templates = AckTemplates()
    info = read_msh(raw)
    first, second = templates.ack(info), templates.ack(info)  # built once, then substituted
    for ack in (first, second):
        text = ack.decode("utf-8" if b"UTF-8" in ack else "latin-1")
        msg = apy_parse(text.rstrip("\r"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        msg.validate()
        assert msg.msa.msa_1.value == "AA"
        assert msg.msa.msa_2.value == raw.split(b"|")[9].decode()
        assert msg.msh.msh_12.value == info.version
        assert msg.msh.msh_18.value == info.charset
    assert first.split(b"|")[9] != second.split(b"|")[9]  # a new MSH-10 per ACK
    assert templates.size == 1  # one template for one sender shape
