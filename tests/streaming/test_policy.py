"""LocalAgreement without a model: hypotheses are lists of timed words made by hand."""

from __future__ import annotations

import pytest

from malsori.results import Word
from malsori.streaming.policy import LocalAgreement, join_words, word_key


def hyp(*spec: tuple[float, float, str]) -> list[Word]:
    return [Word(a, b, t, 1.0) for a, b, t in spec]


def texts(words: list[Word] | tuple[Word, ...]) -> list[str]:
    return [w.word for w in words]


def test_word_key_ignores_case_spaces_and_punctuation() -> None:
    assert word_key(" Hello,") == word_key("hello") == "hello"
    assert word_key(" 안녕하세요.") == "안녕하세요"
    assert word_key("?") == "?"  # punctuation alone keeps its characters


def test_nothing_is_committed_from_a_single_hypothesis() -> None:
    policy = LocalAgreement()
    policy.insert(hyp((0.0, 0.4, " The"), (0.4, 0.8, " quick")))
    assert policy.flush() == []
    assert texts(policy.pending) == [" The", " quick"]


def test_the_common_prefix_of_two_hypotheses_is_committed_once() -> None:
    policy = LocalAgreement()
    policy.insert(hyp((0.0, 0.4, " The"), (0.4, 0.8, " quick"), (0.8, 1.0, " round")))
    assert policy.flush() == []
    policy.insert(
        hyp((0.0, 0.4, " The"), (0.4, 0.8, " quick"), (0.8, 1.1, " brown"), (1.1, 1.5, " fox"))
    )
    assert texts(policy.flush()) == [" The", " quick"]
    assert texts(policy.pending) == [" brown", " fox"]
    # The next hypothesis agrees with the pending words: they are committed, never twice.
    policy.insert(hyp((0.0, 0.4, " The"), (0.4, 0.8, " quick"), (0.8, 1.1, " brown"),
                      (1.1, 1.5, " fox"), (1.5, 1.9, " jumps")))  # fmt: skip
    assert texts(policy.flush()) == [" brown", " fox"]
    assert join_words(policy.committed) == "The quick brown fox"
    assert texts(policy.pending) == [" jumps"]


def test_punctuation_and_case_changes_do_not_hold_words_back() -> None:
    policy = LocalAgreement()
    policy.insert(hyp((0.0, 0.5, " hello"), (0.5, 1.0, " world.")))
    policy.insert(hyp((0.0, 0.5, " Hello,"), (0.5, 1.0, " world"), (1.0, 1.3, " again")))
    committed = policy.flush()
    assert texts(committed) == [" Hello,", " world"]  # the newest spelling is kept


def test_a_disagreement_stops_the_commit_there() -> None:
    policy = LocalAgreement()
    policy.insert(hyp((0.0, 0.5, " one"), (0.5, 1.0, " two"), (1.0, 1.5, " three")))
    policy.insert(hyp((0.0, 0.5, " one"), (0.5, 1.0, " too"), (1.0, 1.5, " three")))
    assert texts(policy.flush()) == [" one"]


def test_agreement_of_three_needs_three_hypotheses() -> None:
    policy = LocalAgreement(agreement=3)
    for _ in range(2):
        policy.insert(hyp((0.0, 0.5, " one"), (0.5, 1.0, " two")))
        assert policy.flush() == []
    policy.insert(hyp((0.0, 0.5, " one"), (0.5, 1.0, " two")))
    assert texts(policy.flush()) == [" one", " two"]
    with pytest.raises(ValueError):
        LocalAgreement(agreement=1)


def test_words_repeated_from_the_committed_tail_are_dropped() -> None:
    """After the buffer is cut, Whisper decodes the committed words still in it again."""
    policy = LocalAgreement()
    policy.insert(hyp((0.0, 0.5, " one"), (0.5, 1.0, " two")))
    policy.insert(hyp((0.0, 0.5, " one"), (0.5, 1.0, " two"), (1.0, 1.4, " three")))
    assert texts(policy.flush()) == [" one", " two"]
    # Times moved: " two" now starts after the committed end, but it is the same word.
    policy.insert(hyp((1.0, 1.2, " two"), (1.2, 1.4, " three"), (1.4, 1.8, " four")))
    assert texts(policy.pending) == [" three", " four"]
    policy.insert(hyp((1.0, 1.2, " two"), (1.2, 1.4, " three"), (1.4, 1.8, " four")))
    assert texts(policy.flush()) == [" three", " four"]


def test_committed_times_never_go_backwards() -> None:
    policy = LocalAgreement()
    policy.insert(hyp((0.0, 1.0, " a"), (1.0, 2.0, " b")))
    policy.insert(hyp((0.0, 1.0, " a"), (1.0, 2.0, " b"), (2.0, 2.4, " c")))
    policy.flush()
    policy.insert(hyp((1.95, 2.3, " c"), (2.3, 2.6, " d")))
    policy.insert(hyp((1.95, 2.3, " c"), (2.3, 2.6, " d")))
    policy.flush()
    ends = [0.0]
    for w in policy.committed:
        assert w.start >= ends[-1] - 1e-9 and w.end >= w.start
        ends.append(w.end)


def test_commit_pending_commits_without_agreement() -> None:
    policy = LocalAgreement()
    policy.insert(hyp((0.0, 0.5, " stop"), (0.5, 1.0, " here"), (3.0, 3.5, " later")))
    assert texts(policy.commit_pending(until=1.0)) == [" stop", " here"]
    assert texts(policy.pending) == [" later"]
    assert texts(policy.commit_pending()) == [" later"]
    assert policy.pending == ()
    policy.reset_hypotheses()
    assert policy.flush() == []


def test_an_unagreed_repeat_of_the_utterance_is_not_committed() -> None:
    """A last decode that writes the utterance's end twice ("고객님 양해 바랍니다 고객님 양해
    바", the copy cut short) commits nothing new; a real word after it is kept."""
    policy = LocalAgreement()
    first = hyp((0.0, 0.5, " 고객님."), (0.6, 0.9, " 양해"), (0.9, 1.6, " 바랍니다."))
    policy.insert(first)
    policy.insert(first)
    assert len(policy.flush()) == 3
    policy.insert([*first, *hyp((1.7, 1.9, " 고객님"), (1.9, 2.0, " 양해"), (2.0, 2.1, " 바�"))])
    assert policy.commit_pending() == []
    assert join_words(policy.committed) == "고객님. 양해 바랍니다."
    # Spaced differently, and the whole last phrase again: still a repeat.
    policy.insert(hyp((1.7, 1.9, " 고객님양해"), (1.9, 2.0, " 바랍니다")))
    assert policy.commit_pending() == []
    policy.insert(hyp((1.7, 1.9, " 양해"), (1.9, 2.2, " 바랍니다."), (2.2, 2.5, " 감사합니다.")))
    # (The repeat at its start is the overlap ``insert`` removes; the new word is kept.)
    assert texts(policy.commit_pending()) == [" 감사합니다."]


def test_a_phrase_said_again_in_the_next_utterance_is_kept() -> None:
    policy = LocalAgreement()
    first = hyp((0.0, 0.3, " 네"), (0.3, 0.9, " 알겠습니다."))
    policy.insert(first)
    assert texts(policy.commit_pending()) == [" 네", " 알겠습니다."]
    policy.reset_hypotheses()  # the speaker stopped: a new utterance begins
    policy.insert(hyp((3.0, 3.3, " 네"), (3.3, 3.9, " 알겠습니다.")))
    assert texts(policy.commit_pending()) == [" 네", " 알겠습니다."]
    # One word said twice in the same utterance is kept too ("네. 네.").
    policy.insert(hyp((4.0, 4.3, " 네.")))
    policy.insert(hyp((4.0, 4.3, " 네."), (4.5, 4.8, " 네.")))
    assert texts(policy.flush()) == [" 네."]
    assert texts(policy.commit_pending()) == [" 네."]
