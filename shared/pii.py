"""Personal data (PIPL): field encryption, keyed hashes for matching, masking, redaction."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEV_PII_KEY = "dev-only-pii-key-change-me"

PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)")
LANDLINE_RE = re.compile(r"(?<!\d)(0\d{2,3})-?(\d{7,8})(?!\d)")
ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9A-Za-z])")
_DIGIT_RUN = re.compile(r"\d{3}")  # each of the three patterns above has one


class PiiKeyError(ValueError):
    """Personal data that none of the configured keys decrypts: an error, never empty data."""


def key_id(secret: str) -> str:
    """A short, non-secret name of a key (which key sealed a value)."""
    return hashlib.sha256(b"fengqiao/kid/" + secret.encode()).hexdigest()[:8]


def _fernet(secret: str) -> Fernet:
    return Fernet(
        base64.urlsafe_b64encode(hashlib.sha256(b"fengqiao/enc/" + secret.encode()).digest())
    )


def _aead(secret: str) -> AESGCM:
    return AESGCM(hashlib.sha256(b"fengqiao/aead/" + secret.encode()).digest())


_AEAD_MARK = "~"  # an AES-GCM body (not base64url, so never the start of a Fernet token)


class PiiCipher:
    """Encrypts fields and hashes them for equality matching, with key versions.

    Values are written as `<key id>:~<base64url(nonce · AES-256-GCM ciphertext and tag)>` with
    the current key (a tenth of Fernet's CPU); values written as `<key id>:<Fernet token>`
    before still open, and any previous key still decrypts (a value without a key id is tried
    with every key). `fengqiao pii rekey`
    re-encrypts stored values with the current key and recomputes the blind indexes, after
    which the previous keys can be dropped.
    """

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        self.current_id = key_id(secret)
        self._keys = {key_id(k): _fernet(k) for k in (secret, *previous) if k}
        self._current = self._keys[self.current_id]
        self._any = MultiFernet(list(self._keys.values()))
        self._aeads = {key_id(k): _aead(k) for k in (secret, *previous) if k}
        self._current_aead = self._aeads[self.current_id]
        self._mac_key = hashlib.sha256(b"fengqiao/mac/" + secret.encode()).digest()

    def _seal_bytes(self, raw: bytes) -> str:
        nonce = os.urandom(12)  # random 96-bit nonces: rotate the key long before 2^32 values
        sealed = self._current_aead.encrypt(nonce, raw, self.current_id.encode())
        return f"{self.current_id}:{_AEAD_MARK}{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def _open_bytes(self, token: str) -> bytes:
        kid, sep, body = token.partition(":")
        try:
            if sep and body.startswith(_AEAD_MARK):
                aead = self._aeads.get(kid)
                if aead is None:
                    raise PiiKeyError(
                        f"cannot decrypt personal data: sealed with key {kid}, not configured"
                    )
                blob = base64.urlsafe_b64decode(body[1:])
                return aead.decrypt(blob[:12], blob[12:], kid.encode())
            if sep and kid in self._keys:
                return self._keys[kid].decrypt(body.encode())
            if sep and len(kid) == 8 and body.startswith("gAAAA"):
                raise PiiKeyError(
                    f"cannot decrypt personal data: sealed with key {kid}, not configured"
                )
            return self._any.decrypt(token.encode())
        except (InvalidToken, InvalidTag, binascii.Error):
            raise PiiKeyError("cannot decrypt personal data with the configured keys") from None

    def encrypt(self, value: str | None) -> str | None:
        """Encrypt a string (None stays None)."""
        if value is None or value == "":
            return value
        return self._seal_bytes(value.encode())

    def decrypt(self, token: str | None) -> str | None:
        """Decrypt a string produced by encrypt(); PiiKeyError when no key opens it."""
        if token is None or token == "":
            return token
        return self._open_bytes(token).decode()

    def seal(self, data: dict[str, Any]) -> str:
        """Encrypt a JSON object (contact details that travel on the bus)."""
        return self._seal_bytes(json.dumps(data, ensure_ascii=False).encode())

    def unseal(self, token: str) -> dict[str, Any]:
        """Decrypt a sealed JSON object; PiiKeyError when no key opens it."""
        out: dict[str, Any] = json.loads(self._open_bytes(token))
        return out

    def rotate(self, token: str | None) -> str | None:
        """The same value sealed with the current key (rekeying)."""
        if token is None or token == "":
            return token
        if token.startswith(self.current_id + ":"):
            return token
        return self._seal_bytes(self._open_bytes(token))

    def blind_index(self, kind: str, value: str | None) -> str | None:
        """Keyed hash of a normalised phone or ID number, for matching without decrypting."""
        if not value:
            return None
        norm = re.sub(r"[\s-]", "", value).upper()
        if kind == "phone":
            norm = re.sub(r"^(\+?86)", "", norm)
        return hmac.new(self._mac_key, f"{kind}:{norm}".encode(), hashlib.sha256).hexdigest()


def mask_phone(phone: str | None) -> str | None:
    """138****1234."""
    if not phone:
        return phone
    digits = re.sub(r"\D", "", phone)
    if len(digits) >= 7:
        return f"{digits[:3]}****{digits[-4:]}"
    return "****"


def mask_name(name: str | None) -> str | None:
    """张* / 张*明; organisations should not be passed here."""
    if not name:
        return name
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_id_number(value: str | None) -> str | None:
    """522731**********30."""
    if not value:
        return value
    if len(value) <= 6:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 8) + value[-2:]


def mask_address(address: str | None) -> str | None:
    """Keep the first few characters (county/town), hide the rest."""
    if not address:
        return address
    keep = min(6, max(1, len(address) // 2))
    return address[:keep] + "****"


# Common surnames (百家姓, the most frequent and the usual two-character ones; those that are
# everyday words too — 和, 时, 向, 路 … — are left out): names found by pattern start with one.
SURNAMES = (
    "欧阳|司马|上官|诸葛|东方|皇甫|尉迟|公孙|慕容|令狐|"
    "王|李|张|刘|陈|杨|黄|赵|吴|周|徐|孙|马|朱|胡|郭|何|高|林|罗|郑|梁|谢|宋|唐|许|韩|冯|邓|"
    "曹|彭|曾|肖|田|董|袁|潘|蒋|蔡|余|杜|叶|程|苏|魏|吕|丁|任|沈|姚|卢|姜|崔|钟|谭|陆|汪|"
    "范|金|石|廖|贾|夏|韦|付|方|白|邹|孟|熊|秦|邱|江|尹|薛|闫|段|雷|侯|龙|史|陶|黎|贺|顾|毛|"
    "郝|龚|邵|万|钱|严|覃|武|戴|莫|孔|汤|温|康|施|文|牛|樊|葛|邢|齐|易|乔|伍|庞|颜|"
    "倪|庄|聂|章|鲁|岳|翟|殷|詹|申|耿|兰|焦|俞|左|柳|甘|祝|符|舒|阮|柯|纪|梅|"
    "童|凌|毕|季|裴|霍|涂|苗|盛|翁|冉|骆|蓝|游|辛|靳|柴|蒙|鲍|喻|祁|蒲|"
    "房|滕|屈|饶|牟|艾|尤|穆|卓|吉|缪|项|芦|褚|娄|窦|戚|岑|"
    "党|费|卜|晏|柏|宗|瞿|桂|佟|臧|闵|苟|邬|卞|姬|仇|栾|隋|"
    "刁|沙|荣|巫|寇|桑|郎|甄|丛|仲|虞|敖|巩|佘|池|麻|苑|迟|邝"
)
_GIVEN = r"(?:(?!某)[\u4e00-\u9fa5]){1,2}?"
# 王建国先生 / 李秀英女士 / 张某某: surname, given name, then a form of address
HONORIFIC_NAME_RE = re.compile(
    rf"({SURNAMES})({_GIVEN})?(先生|女士|小姐|师傅|阿姨|大爷|大妈|大姐|大哥|老师|某某|某)"
)
# 报警人张三丰称… / 邻居李四光与…: a role word, then a name, then a word that ends it
CUE_NAME_RE = re.compile(
    r"(报警人|当事人|申请人|被申请人|求助人|投诉人|举报人|反映人|来电人|来访人|业主|租户|房东|"
    r"村民|居民|邻居|丈夫|妻子|老公|老婆|儿子|女儿|父亲|母亲|包工头|工头|老板|雇主|员工|工人|"
    r"网格员|联户长|患者|家属|名叫|叫做|我叫|姓名|对方)[：:\s]?"
    rf"({SURNAMES})({_GIVEN})(?=称|说|反映|报称|诉称|因|与|跟|在|家|的|等|及|向|对|被|把|"
    r"[，,。；;、（(\s：:]|$)"
)
_NUM = r"[0-9０-９一二三四五六七八九十百零〇两]+"
# 幸福路12号3单元 / 东街12号 / 李家村3组5号 / 阳光小区5栋2单元301室
ADDRESS_RE = re.compile(
    r"(?:[\u4e00-\u9fa5A-Za-z0-9]{1,12}?(?:路|街|巷|道|弄|胡同|大道)" + _NUM + r"号"
    r"|[\u4e00-\u9fa5]{1,8}?村" + _NUM + r"组(?:" + _NUM + r"号)?"
    r"|[\u4e00-\u9fa5]{2,8}?(?:小区|花园|公寓|大厦|家园|新村|苑)" + _NUM + r"(?:栋|幢|号楼|号))"
    r"(?:" + _NUM + r"(?:栋|幢|号楼|单元|楼|层|室|户|号))*"
)


_DOOR_NUMBER_RE = re.compile(_NUM + r"(?=栋|幢|号|单元|楼|层|室|户|组)")


def _mask_digits(address: str) -> str:
    """The place stays (road, village), the numbers that find a door go."""
    return re.sub(
        r"[0-9０-９一二三四五六七八九十百零〇两]+(?=栋|幢|号|单元|楼|层|室|户|组)", "*", address
    )


def redact_text(text: str) -> str:
    """Mask phone and ID numbers, door addresses and names found by pattern in free text.

    For narratives, errors and log lines; `redact_free_text` also masks the case's own people
    and places by name.
    """
    ascii_only = text.isascii()
    # plain ASCII (ids, event types, most log lines): the address and name patterns need
    # Chinese characters, and an ID, a mobile or a landline number three digits in a row
    if ascii_only and _DIGIT_RUN.search(text) is None:
        return text
    text = ID_RE.sub(lambda m: m.group(1) + "*" * 10 + m.group(3)[-2:], text)
    text = PHONE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = LANDLINE_RE.sub(lambda m: f"{m.group(1)}-****{m.group(2)[-2:]}", text)
    if ascii_only:
        return text
    text = ADDRESS_RE.sub(lambda m: _mask_digits(m.group(0)), text)
    text = HONORIFIC_NAME_RE.sub(
        lambda m: m.group(1) + "*" * len(m.group(2) or "") + m.group(3), text
    )
    return CUE_NAME_RE.sub(lambda m: m.group(1) + m.group(2) + "*" * len(m.group(3)), text)


def redact_free_text(
    text: str, names: Iterable[str | None] = (), addresses: Iterable[str | None] = ()
) -> str:
    """Free text about a case, fit to leave its service: the case's known persons and
    addresses masked wherever they appear, then everything `redact_text` finds by pattern."""
    for address in sorted({a for a in addresses if a and len(a) >= 4}, key=len, reverse=True):
        text = text.replace(address, mask_address(address) or "")
    persons = {n for n in names if n and len(n) >= 2 and not is_organisation(n)}
    for name in sorted(persons, key=len, reverse=True):
        text = text.replace(name, mask_name(name) or "")
    return redact_text(text)


ORG_MARKERS = (
    "公司",
    "厂",
    "企业",
    "医院",
    "诊所",
    "卫生院",
    "学校",
    "中心",
    "银行",
    "集团",
    "商店",
    "超市",
    "店",
    "委员会",
    "政府",
    "机构",
    "合作社",
    "物业",
    "门诊",
    "工作室",
)


def is_organisation(name: str | None) -> bool:
    """Whether a party name names an organisation rather than a person."""
    return bool(name) and any(m in (name or "") for m in ORG_MARKERS)
