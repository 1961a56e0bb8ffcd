"""Reason codes of ICD §6, one ``StrEnum`` per family, each with a plain-language message.

The messages are what bureau staff read in ``sscard validate`` and what goes into
``reason_text`` and ``.rej`` files: they name the rule and never a field's value
(ICD §4.2).
"""

from __future__ import annotations

from enum import StrEnum


class FileCode(StrEnum):
    """File-level codes: the whole file is rejected and answered with ``NAME.rej``."""

    F01 = "F01"
    F02 = "F02"
    F03 = "F03"
    F04 = "F04"
    F05 = "F05"
    F06 = "F06"
    F07 = "F07"
    F08 = "F08"
    F09 = "F09"
    F10 = "F10"


class LineCode(StrEnum):
    """Line-level codes: the line is rejected, the rest of the file goes on."""

    E101 = "E101"
    E102 = "E102"
    E103 = "E103"
    E104 = "E104"
    E105 = "E105"
    E106 = "E106"
    E107 = "E107"
    E108 = "E108"
    E109 = "E109"
    E110 = "E110"
    E111 = "E111"
    E112 = "E112"
    E113 = "E113"
    E114 = "E114"
    E115 = "E115"
    E116 = "E116"
    E117 = "E117"
    E118 = "E118"
    E119 = "E119"
    E120 = "E120"
    E121 = "E121"
    E130 = "E130"
    E131 = "E131"
    E132 = "E132"
    E140 = "E140"


class MoneyCode(StrEnum):
    """DISBRSP result and reason codes."""

    C103 = "103"
    C104 = "104"
    C105 = "105"
    C106 = "106"
    C140 = "140"
    C208 = "208"
    C209 = "209"
    C301 = "301"


class ReconCode(StrEnum):
    """RECON break reasons."""

    R01 = "R01"
    R02 = "R02"
    R03 = "R03"
    R04 = "R04"
    R05 = "R05"
    R06 = "R06"
    R07 = "R07"
    R08 = "R08"
    R09 = "R09"


#: code -> (Chinese, English). One place for every message the hub writes or prints.
MESSAGES: dict[str, tuple[str, str]] = {
    "F01": (
        "控制文件格式错误或大小/SHA-256不符",
        "control file malformed, or size / SHA-256 mismatch",
    ),
    "F02": (
        "记录数在文件头、文件尾、控制文件与明细之间不一致",
        "record count differs between header, trailer, control file and lines",
    ),
    "F03": ("文件无法按约定字符集解码", "not decodable in the connection's encoding"),
    "F04": (
        "文件头格式错误、类型或接收方不符，或业务日期不允许",
        "header malformed, wrong TYPE, wrong receiver, or business date not allowed",
    ),
    "F05": (
        "文件名或批次号已处理且内容不同",
        "NAME or BATCH_NO already processed with different content",
    ),
    "F06": ("明细序号缺失、重复或乱序", "detail SEQ missing, repeated or out of order"),
    "F07": ("文件名不符合命名规则", "file name does not match the naming rule"),
    "F08": ("文件尾缺失（文件不完整）", "trailer missing (truncated file)"),
    "F09": (
        "总金额与明细合计不符，或文件头与文件尾金额不符",
        "total amount differs from the sum of the lines, or header and trailer totals differ",
    ),
    "F10": (
        "照片压缩包或其控制文件缺失超时、损坏、条目名不安全或不匹配",
        "photo zip or its control file missing past zip_wait, corrupt, unsafe entry names, or not matching",
    ),
    "E101": (
        "证件号码无效（长度、字符、校验位或出生日期）",
        "id_no invalid (length, characters, check digit, birth date)",
    ),
    "E102": (
        "出生日期无效或与证件号码不符",
        "birth_date not a valid date, or does not match id_no",
    ),
    "E103": ("性别无效或与证件号码不符", "gender not 1/2, or does not match id_no"),
    "E104": ("姓名无效或过长", "name invalid or too long"),
    "E105": ("社会保障卡卡号格式无效", "card_no format invalid"),
    "E106": ("社会保障卡卡号已使用", "card_no already issued"),
    "E107": ("业务流水号已使用", "app_no / req_no / evt_no already used"),
    "E108": (
        "申请人已持有未注销的社会保障卡（一人一卡）",
        "applicant already holds a card that is not cancelled",
    ),
    "E109": (
        "原卡号缺失、未知、非本人或状态不符",
        "old_card_no missing, unknown, not the applicant's, or not in the status the app_type needs",
    ),
    "E110": ("保留银行卡号标志缺失或无法保留", "keep_account missing or not possible"),
    "E111": ("服务银行代码未知", "bank_code unknown"),
    "E112": ("行政区划代码无效", "region_code invalid"),
    "E113": (
        "照片缺失或不是358×441、不超过40960字节的JPEG",
        "photo missing or not a valid 358x441 JPEG of at most 40,960 bytes",
    ),
    "E114": ("手机号码无效", "mobile invalid"),
    "E115": (
        "民族、国籍、职业、证件类型或证件有效期无效",
        "ethnicity, nationality, occupation, id_type or id_valid_to invalid",
    ),
    "E116": ("字段数错误或字段类型不符", "wrong number of fields, or a field not of its type"),
    "E117": (
        "业务类型、操作或待遇类别未知，或文件内待遇类别不一致",
        "app_type / op / benefit_type unknown, or benefit_type differs within a file",
    ),
    "E118": (
        "换领原因缺失或无效，或距有效期满超过60天",
        "replace_reason missing or invalid, or renewal more than 60 days before expiry",
    ),
    "E119": (
        "卡号或银行卡号未知，或不属于该卡",
        "card_no / pan unknown, or the pan is not the card's",
    ),
    "E120": ("当前卡状态不允许该操作", "operation not allowed in the card's current status"),
    "E121": ("已申请补换卡，不能解挂", "unblock refused: a replacement is already under way"),
    "E130": (
        "密码块无效（无法解密、超出时间窗口或重放）",
        "PIN block refused (does not decrypt, outside the time window, replayed)",
    ),
    "E131": ("密码过于简单", "PIN rejected as weak"),
    "E132": ("身份核验失败", "identity check failed"),
    "E140": ("合作银行未按时应答", "partner bank did not answer in time"),
    "103": ("账户不存在", "account does not exist"),
    "104": ("证件号码与账户不符", "id_no does not match the account"),
    "105": ("姓名与账户不符", "name does not match the account"),
    "106": ("账户已销户或不能入账", "account closed, or not able to receive credits"),
    "140": ("合作银行未按时应答", "partner bank did not answer in time"),
    "208": ("金额无效", "amount invalid"),
    "209": ("支付流水号已使用", "pay_no already used by this bureau"),
    "301": ("批次在截止时间前未到账", "batch not funded by the funding cut-off"),
    "M001": ("芯片缺陷", "chip defect"),
    "M002": ("印刷缺陷", "print defect"),
    "M003": ("照片不可用", "photo unusable"),
    "M004": ("数据被拒绝", "data rejected"),
    "M099": ("其他制卡原因", "other factory reason"),
    "R01": ("指令缺少应答", "response missing for an instructed line"),
    "R02": ("指令、入账或应答金额不符", "amount differs between instruction, posting or response"),
    "R03": ("批次未到账或到账不足", "batch unfunded or under-funded"),
    "R04": ("批次到账超额", "batch over-funded"),
    "R05": ("无指令入账", "posting without instruction"),
    "R06": ("重复入账", "duplicate posting"),
    "R07": ("退款到期未收到", "return not received when due"),
    "R08": ("合作银行结算缺失或不符", "partner settlement missing or different"),
    "R09": ("无法识别的对账单项目", "unidentified statement item"),
}


def message(code: str, lang: str = "en") -> str:
    """The plain-language message for ``code`` in ``lang`` (``zh`` or ``en``)."""
    zh, en = MESSAGES[code]
    return zh if lang == "zh" else en


def reason_text(code: str) -> str:
    """``reason_text`` written into responses: Chinese, no field values (ICD §4.2).

    A code the hub does not know (a counterparty's own) is passed on with a neutral text."""
    return MESSAGES[code][0] if code in MESSAGES else "对方机构拒绝"
