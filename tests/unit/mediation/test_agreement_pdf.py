"""`GET /v1/cases/{id}/agreement/document?format=pdf`: a real PDF with the text version's content.

The PDF is read back here without any PDF tool: its page content streams are ASCII85 + Flate
encoded, and every string is shown in STSong-Light with the UniGB-UCS2-H encoding (UTF-16BE).
"""

from __future__ import annotations

import base64
import re
import zlib

from tests.unit.mediation.conftest import Svc

ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}


def _literal(data: bytes, i: int) -> tuple[bytes, int]:
    """The PDF literal string starting after the '(' at data[i - 1]; returns (bytes, end)."""
    out, depth = bytearray(), 1
    while True:
        c = data[i]
        if c == ord("\\"):
            nxt = data[i + 1]
            if nxt in b"01234567":
                digits = re.match(rb"[0-7]{1,3}", data[i + 1 : i + 4])
                assert digits is not None
                out.append(int(digits.group(), 8) & 0xFF)
                i += 1 + len(digits.group())
                continue
            out += ESCAPES.get(nxt, bytes([nxt]))
            i += 2
            continue
        if c == ord("("):
            depth += 1
        elif c == ord(")"):
            depth -= 1
            if depth == 0:
                return bytes(out), i + 1
        out.append(c)
        i += 1


def pdf_lines(pdf: bytes) -> list[str]:
    """Every string shown with Tj on every page, in order, decoded from UCS-2."""
    lines: list[str] = []
    for m in re.finditer(rb"/Filter \[ /ASCII85Decode /FlateDecode \][^>]*>>\s*stream\r?\n", pdf):
        end = pdf.index(b"endstream", m.end())
        raw = pdf[m.end() : end].strip().removesuffix(b"~>")
        content = zlib.decompress(base64.a85decode(raw))
        i = 0
        while (start := content.find(b"(", i)) != -1:
            s, i = _literal(content, start + 1)
            if content[i:].lstrip().startswith(b"Tj"):
                lines.append(s.decode("utf-16-be"))
    return lines


def squash(text: str) -> str:
    return "".join(text.split())


async def agreed(svc: Svc, terms: str = "李四光赔偿张三丰修缮费") -> tuple[str, str]:
    cid = await svc.triaged()
    me = "med-people-town-day"
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "面谈"}, expect=201)
    body = await svc.act(cid, "agreement", me, {"terms": terms, "amount_yuan": 3000}, expect=201)
    return cid, str(body["agreement_id"])


def url(cid: str, fmt: str | None = "pdf") -> str:
    q = f"?format={fmt}" if fmt else ""
    return f"/v1/cases/{cid}/agreement/document{q}"


async def test_pdf_is_a_real_pdf_with_the_text_documents_content(svc: Svc) -> None:
    cid, agreement_id = await agreed(svc)
    h = svc.token("med-people-town-day")
    r = await svc.client.get(url(cid), headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert f"agreement-{agreement_id}.pdf" in r.headers["content-disposition"]
    pdf = r.content
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/Type /Catalog" in pdf and b"xref" in pdf and b"/Count 1 " in pdf
    assert b"/BaseFont /STSong-Light" in pdf and b"/Encoding /UniGB-UCS2-H" in pdf
    lines = pdf_lines(pdf)
    assert lines[0] == "测试调解协议书"
    assert f"案件编号：{cid}" in lines and f"协议编号：{agreement_id}" in lines
    assert "给付金额：3,000 元" in lines and "李四光赔偿张三丰修缮费" in lines
    text = (await svc.client.get(url(cid, None), headers=h)).text
    assert squash("".join(lines)) == squash(text)  # the same document, only laid out


async def test_pdf_masks_personal_data_by_role_like_the_text(svc: Svc) -> None:
    cid, _ = await agreed(svc)
    seen: dict[str, str] = {}
    for who in ("med-people-town-day", "coordinator-town", "admin", "viewer-county"):
        r = await svc.client.get(url(cid), headers=svc.token(who))
        assert r.status_code == 200, who
        seen[who] = "\n".join(pdf_lines(r.content))
        text = (await svc.client.get(url(cid, "text"), headers=svc.token(who))).text
        assert squash(seen[who]) == squash(text), who
    for who in ("med-people-town-day", "coordinator-town", "admin"):
        assert "张三丰" in seen[who] and "13812345678" in seen[who], who
    viewer = seen["viewer-county"]
    assert "张*丰" in viewer and "李*光赔偿张*丰修缮费" in viewer
    assert "张三丰" not in viewer and "李四光" not in viewer and "13812345678" not in viewer


async def test_long_terms_wrap_onto_further_pages(svc: Svc) -> None:
    terms = "甲方于每月五日前向乙方支付修缮费并负责清理楼道杂物。" * 120
    cid, _ = await agreed(svc, terms)
    r = await svc.client.get(url(cid), headers=svc.token("admin"))
    pages = re.search(rb"/Count (\d+) /Kids", r.content)
    assert pages is not None and int(pages.group(1)) > 1
    lines = pdf_lines(r.content)
    assert squash(terms) in squash("".join(lines))
    assert max(len(line) for line in lines) < 60  # wrapped to the page width


async def test_pdf_keeps_the_documents_access_rules(svc: Svc) -> None:
    cid, _ = await agreed(svc)
    r = await svc.client.get(url(cid), headers=svc.token("med-labour-town-day"))
    assert r.status_code == 404  # another channel: the case does not exist for them
    r = await svc.client.get(url(cid))
    assert r.status_code == 401
    r = await svc.client.get(url(cid, "docx"), headers=svc.token("admin"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"].endswith("format")
    no_agreement = await svc.triaged()
    r = await svc.client.get(url(no_agreement), headers=svc.token("admin"))
    assert r.status_code == 404
