"""Korean post-processing: spacing only where text is under-spaced, punctuation only where it is
missing, optional number styles, and nothing done to other languages."""

from __future__ import annotations

import threading

import pytest

from malsori import korean


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("아버지가방에들어가신다", "아버지가 방에 들어가신다"),
        (" 아버지가방에들어가신다", " 아버지가 방에 들어가신다"),  # Whisper's leading space kept
        ("원하시면인터넷으로신청하세요", "원하시면 인터넷으로 신청하세요"),
        # One run-together stretch inside an otherwise well-spaced segment.
        (
            "그래서 저는아버지가방에들어가신다고 했어요",
            "그래서 저는 아버지가 방에 들어가신다고 했어요",
        ),
    ],
)
def test_under_spaced_text_is_corrected(text: str, expected: str) -> None:
    assert korean.correct_spacing(text) == expected


NORMAL = [
    "오늘 회의는 오후 세 시에 시작합니다.",
    " 고객님, 주문하신 상품은 내일 오전에 도착할 예정입니다.",
    "불국사와 석굴암은 유네스코 세계문화유산으로 등재되어 있어요",
    "자격증 취득을 원하시면 인터넷으로 신청해주세요",  # Kiwi alone would split 신청해 주세요
    "드라마 관계자분들은 모두 회의실로 들어와 주십시오.",
    "사회복지공동모금회에 기부했어요",  # a long compound noun, not missing spaces
    "한국과학기술정보연구원의 연구 결과입니다",
    "국민건강보험공단에서 안내문을 보내드렸습니다.",
    "지난주에 부산으로 가족 여행을 다녀왔습니다",
    "2천에 60만 원입니다",
    "선생님, 정말 감사드립니다",
    "네",
]


@pytest.mark.parametrize("text", NORMAL)
def test_normally_spaced_text_is_left_exactly_as_is(text: str) -> None:
    assert korean.correct_spacing(text) == text


def test_spacing_only_inserts_spaces() -> None:
    text = "아버지가방에들어가 신다고하셨어요"  # one wrong space: kept, never removed
    out = korean.correct_spacing(text)
    assert out != text
    assert out.replace(" ", "") == text.replace(" ", "")
    assert "들어가 신다고" in out


def test_under_spaced_decision() -> None:
    assert korean.is_under_spaced("아버지가방에들어가신다")
    assert not korean.is_under_spaced("아버지가 방에 들어가신다")
    assert not korean.is_under_spaced("감사합니다")  # too short to judge
    assert not korean.is_under_spaced("The quick brown fox")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("밥 먹었니", "밥 먹었니?"),
        ("내일 같이 갈까", "내일 같이 갈까?"),
        ("괜찮으십니까", "괜찮으십니까?"),
        ("무엇을 도와드릴까요", "무엇을 도와드릴까요?"),
        ("어디 가세요", "어디 가세요?"),  # ambiguous ending with a question word
        ("여기 앉으세요", "여기 앉으세요."),  # the same ending without one
        ("회의를 시작하겠습니다", "회의를 시작하겠습니다."),
        ("어디 가는지 모르겠어요", "어디 가는지 모르겠어요."),  # embedded question
        ("그렇구나", "그렇구나."),
        (" 정말 기뻐 ", " 정말 기뻐. "),  # surrounding spaces kept
        ("원래 가족이 더 힘든 법이에요 힘내세요", "원래 가족이 더 힘든 법이에요. 힘내세요."),
    ],
)
def test_punctuation_added_where_missing(text: str, expected: str) -> None:
    assert korean.add_sentence_punctuation(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "이미 끝났어요?",
        "정말요!",
        "네, 알겠습니다.",
        "원래 가족이 더 힘든 법이에요. 힘내세요…",
        "그래서 저는 학교에",  # cut mid-sentence: a segment boundary, not a sentence end
        "이렇게 하고",
        "왜냐하면 바쁘니까",
        "저는 ENTP",
        "투표율 64.5%",
        "The meeting starts at three",
        "",
        "   ",
    ],
)
def test_punctuation_left_alone(text: str) -> None:
    assert korean.add_sentence_punctuation(text) == text


@pytest.mark.parametrize(
    "text", ["thisisaverylongenglishwordwithoutanyspaces", "Hello world", "今日は良い天気ですね"]
)
def test_other_languages_untouched(text: str) -> None:
    assert korean.correct_spacing(text) == text
    assert korean.add_sentence_punctuation(text) == text
    assert korean.convert_numbers(text, "digits") == text
    assert korean.convert_numbers(text, "words") == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("육십만 원입니다", "60만 원입니다"),
        ("이천이십사 년 시월 이십육일", "2024 년 시월 26일"),
        ("백오십 명이 왔어요", "150 명이 왔어요"),
        ("천만에요", "천만에요"),  # an interjection, not ten million
        ("이 사과는 맛있어요", "이 사과는 맛있어요"),  # "이" as "this"
    ],
)
def test_numbers_as_digits(text: str, expected: str) -> None:
    assert korean.convert_numbers(text, "digits") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024년 10월 26일", "이천이십사년 시월 이십육일"),
        ("2천에 60만 원입니다", "이천에 육십만 원입니다"),
        ("5시간 후 10시에 만나요", "다섯시간 후 열시에 만나요"),  # native numbers before counters
        ("사과 3개와 학생 21명", "사과 세개와 학생 스물한명"),
        ("투표율 64.5%에", "투표율 육십사 점 오 퍼센트에"),
        ("1,000원", "천원"),
        ("MP3 파일", "MP3 파일"),
    ],
)
def test_numbers_as_words(text: str, expected: str) -> None:
    assert korean.convert_numbers(text, "words") == expected


def test_keep_leaves_numbers() -> None:
    assert korean.convert_numbers("육십만 원, 60만 원", "keep") == "육십만 원, 60만 원"


def test_kiwi_is_shared_and_safe_across_threads() -> None:
    texts = ["아버지가방에들어가신다", "밥 먹었니", "내일 같이 갈까"] * 10
    expected = [korean.add_sentence_punctuation(korean.correct_spacing(t)) for t in texts]
    results: list[str | None] = [None] * len(texts)

    def work(i: int) -> None:
        results[i] = korean.add_sentence_punctuation(korean.correct_spacing(texts[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


# --- standard spacing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spaced"),
    [
        ("마무리되는대로 촬영을 시작할거래", "마무리되는 대로 촬영을 시작할 거래"),  # ending + word
        ("캐스팅 이 마무리되면", "캐스팅이 마무리되면"),  # no space before a particle
        ("이책을 읽었다", "이 책을 읽었다"),  # a determiner before a noun
    ],
)
def test_standard_spacing_puts_the_spaces_orthography_requires(text: str, spaced: str) -> None:
    assert korean.standard_spacing(text) == spaced


@pytest.mark.parametrize(
    "text",
    [
        "불국사와 석굴암은 유네스코 세계문화유산으로 등재되어 있어.",  # a compound noun, together
        "유네스코 세계 문화 유산으로",  # ... or apart: both are allowed
        "인터넷으로 신청해주세요",  # an auxiliary verb after -아/-어, together
        "회의실로 들어와 주십시오",  # ... or apart
        "2시간 동안",  # a number and its unit
        "그만해 주세요",  # 그만하다 is a verb of its own: not 그만 해
        "hello world",
        "",
    ],
)
def test_standard_spacing_leaves_orthographys_choices_as_written(text: str) -> None:
    assert korean.standard_spacing(text) == text


def test_standard_spacing_leaves_unlikely_analyses_alone() -> None:
    # a misheard word ("할부로" heard as "할부러") analyses as 하+ㄹ + a rare adverb: not split
    assert korean.standard_spacing("할부러 하시겠습니까") == "할부러 하시겠습니까"


ODD_TEXTS = [
    "아버지가방에들어가신다",
    "  앞뒤 공백  은 그대로 ",
    "가나다 😀 abc 라마 " * 20,
    "1 2 3 시간",
]


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_standard_spacing_only_ever_moves_spaces(text: str) -> None:
    out = korean.standard_spacing(text)
    assert out.replace(" ", "") == text.replace(" ", "")
    assert out[: len(out) - len(out.lstrip())] == text[: len(text) - len(text.lstrip())]


def test_segment_spacing_runs_the_guard_then_the_rules() -> None:
    assert korean.space("아버지가방에들어가신다") == "아버지가 방에 들어가신다"
    assert korean.space("시작할거래") == "시작할 거래"
