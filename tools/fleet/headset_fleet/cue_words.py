"""The station's LED cues in words a supervisor understands, in English and Chinese.

One table, used by the terminal monitor and the floor board. The English wording is the
README's "LED legend for agents" ("what it means — what to do"); the Chinese is its
translation. A cue the table does not know (a site-defined one) is shown by its id.
"""

from __future__ import annotations

LANGUAGES = ("en", "zh")

CUE_WORDS: dict[str, dict[str, str]] = {
    "idle": {"en": "no call", "zh": "无通话"},
    "on_call": {"en": "call in progress, nothing to do", "zh": "通话中,无需操作"},
    "wrap_up": {"en": "return visit is at its time limit (3 min): wrap up", "zh": "回访已到时限(3 分钟):请结束通话"},
    "outside_hours": {
        "en": "this return-visit call is outside the calling hours",
        "zh": "本次回访不在允许的呼叫时段内",
    },
    "greet": {"en": "you picked up: greet the customer now (within 2 s)", "zh": "已接听:请立即问候客户(2 秒内)"},
    "hangup_ok": {"en": "the script is complete: you may hang up", "zh": "话术已完成:可以挂机"},
    "pause": {
        "en": "keep quiet: the required pause (5 s or 2 s) is running",
        "zh": "请保持安静:规定的停顿(5 秒或 2 秒)进行中",
    },
    "speak": {"en": "the pause is over: say the next line of the script", "zh": "停顿结束:请说话术的下一句"},
    "say_wait": {
        "en": 'nobody has spoken for 5 s: tell the customer "please wait, I\'m checking…"',
        "zh": "已 5 秒无人说话:请告诉客户“请稍等,我正在帮您查询…”",
    },
    "say_busy": {
        "en": "10 s of silence: tell the customer the system is busy",
        "zh": "已静默 10 秒:请告诉客户系统繁忙",
    },
    "hold": {"en": "customer on hold (muted)", "zh": "客户保持中(已静音)"},
    "hold_warn": {"en": "on hold for 45 s: get back to the customer soon", "zh": "已保持 45 秒:请尽快回到客户"},
    "hold_over": {
        "en": "on hold for over 60 s: take the call back, offer a call-back",
        "zh": "保持已超过 60 秒:请接回通话,提出回拨",
    },
    "call_back": {
        "en": "the call dropped mid-conversation: call the customer back now and apologise",
        "zh": "通话中途掉线:请立即回拨客户并致歉",
    },
    "thank_waiting": {"en": "hold ended: thank the customer for waiting", "zh": "保持结束:请感谢客户的耐心等待"},
    "apologize_wait": {
        "en": "answered after more than 3 rings: apologise for the wait",
        "zh": "响铃超过 3 声才接听:请为久等致歉",
    },
    "lower_voice": {"en": "you raised your voice: lower it", "zh": "音量过高:请降低音量"},
    "overtalk": {"en": "you cut in while the customer was talking", "zh": "在客户说话时插话了"},
    "fault": {
        "en": "the station has a problem (audio, GPIO, network): call a technician",
        "zh": "工位设备故障(音频、GPIO、网络):请联系技术人员",
    },
}


def cue_words(cue: str, lang: str = "en") -> str:
    """The cue in words in `lang` ("en" or "zh"); the id itself for an unknown cue, "" for none."""
    if not cue:
        return ""
    words = CUE_WORDS.get(cue)
    if words is None:
        return cue
    return words.get(lang) or words["en"]
