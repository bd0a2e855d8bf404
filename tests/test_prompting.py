"""Chat formats per model family, trimming to the context, and cutting replies at a stop string."""

from __future__ import annotations

import pytest

from domain.errors import UserError
from llmstack.prompting import (
    PromptTooLong,
    Turn,
    build_messages,
    build_prompt,
    cut_at_stop,
    estimate_tokens,
    family_of,
    template_for,
    trim_history,
)

HISTORY = [
    Turn(user="Hi", assistant="Hello! How can I help?"),
    Turn(user="Name a colour.", assistant="Blue."),
]


def render(family: str, system: str, history: list[Turn], message: str) -> str:
    return template_for(family).render(system, history, message)


def test_llama2_first_message_carries_the_system_prompt_inside_the_first_inst() -> None:
    assert render("llama2", "Be brief.", [], "What is OCI?") == (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is OCI? [/INST]"
    )


def test_llama2_history_is_closed_turns_then_an_open_inst() -> None:
    assert render("llama2", "Be brief.", HISTORY, "Another?") == (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! How can I help? </s>"
        "<s>[INST] Name a colour. [/INST] Blue. </s>"
        "<s>[INST] Another? [/INST]"
    )


def test_llama2_without_a_system_prompt_has_no_sys_block() -> None:
    assert render("llama2", "  ", [], "Hi") == "[INST] Hi [/INST]"


def test_llama3_uses_headers_and_ends_ready_for_the_assistant() -> None:
    assert render("llama3", "Be brief.", HISTORY[:1], "Another?") == (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnother?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_mistral_has_no_system_role_so_it_opens_the_first_user_message() -> None:
    assert render("mistral", "Be brief.", HISTORY[:1], "Another?") == (
        "[INST] Be brief.\n\nHi [/INST]Hello! How can I help?</s>[INST] Another? [/INST]"
    )
    assert render("mistral", "Be brief.", [], "Hi") == "[INST] Be brief.\n\nHi [/INST]"


def test_generic_is_a_plain_transcript_ending_with_the_assistant_cue() -> None:
    assert render("generic", "Be brief.", HISTORY[:1], "Another?") == (
        "Be brief.\n\nUser: Hi\nAssistant: Hello! How can I help?\nUser: Another?\nAssistant:"
    )


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("llama2-7b-chat", "llama2"),
        ("meta-llama/Llama-2-13b-chat-hf", "llama2"),
        ("codellama-7b-instruct", "llama2"),
        ("Meta-Llama-3-8B-Instruct", "llama3"),
        ("llama-3.1-8b", "llama3"),
        ("mistralai/Mistral-7B-Instruct-v0.2", "mistral"),
        ("mixtral-8x7b", "mistral"),
        ("falcon-7b-instruct", "generic"),
        ("", "generic"),
    ],
)
def test_the_model_name_picks_the_chat_format(name: str, family: str) -> None:
    assert family_of(name) == family


def test_an_unknown_template_name_lists_the_accepted_ones() -> None:
    with pytest.raises(
        UserError, match=r"chat template 'chatml' is not one of: llama2, llama3, mistral, generic"
    ):
        template_for("chatml")


def test_context_lengths_follow_the_family() -> None:
    assert template_for("llama2").context_tokens == 4096
    assert template_for("llama3").context_tokens == 8192


def test_a_conversation_that_fits_is_sent_whole() -> None:
    prompt = build_prompt(
        template_for("llama2"),
        system="S",
        history=HISTORY,
        message="Next",
        context_tokens=4096,
        max_new_tokens=256,
    )
    assert prompt.dropped_turns == 0
    assert prompt.text == render("llama2", "S", HISTORY, "Next")
    assert prompt.tokens == estimate_tokens(prompt.text)


def test_the_oldest_turns_go_first_and_the_system_prompt_and_message_stay() -> None:
    history = [Turn(user=f"question {i}", assistant="x" * 100) for i in range(10)]
    template = template_for("llama2")
    whole = len(template.render("SYSTEM", history, "the newest"))
    last_three = len(template.render("SYSTEM", history[-3:], "the newest"))
    # Room for the last three turns but not four, counting one token per character.
    prompt = build_prompt(
        template,
        system="SYSTEM",
        history=history,
        message="the newest",
        context_tokens=last_three + 64,
        max_new_tokens=64,
        count_tokens=len,
    )
    assert whole > last_three + 64
    assert prompt.dropped_turns == 7
    assert prompt.text == template.render("SYSTEM", history[-3:], "the newest")
    assert prompt.text.startswith("[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nquestion 7 [/INST]")
    assert prompt.text.endswith("[INST] the newest [/INST]")
    assert prompt.tokens + 64 <= last_three + 64


def test_a_message_too_long_for_the_context_says_by_how_much() -> None:
    with pytest.raises(
        PromptTooLong,
        match=r"about \d+ tokens, but a context of 100 tokens with max tokens 50 leaves room for 50",
    ):
        build_prompt(
            template_for("generic"),
            system="",
            history=HISTORY,
            message="word " * 200,
            context_tokens=100,
            max_new_tokens=50,
        )


def test_max_tokens_as_large_as_the_context_is_refused() -> None:
    with pytest.raises(PromptTooLong, match="max tokens 4096 leaves no room"):
        build_prompt(
            template_for("llama2"),
            system="",
            history=[],
            message="Hi",
            context_tokens=4096,
            max_new_tokens=4096,
        )


def test_trimming_drops_the_oldest_turns_and_counts_them() -> None:
    history = [Turn(user=str(i), assistant="") for i in range(5)]
    # One token per remaining turn plus one for the message: room for two turns.
    kept, tokens, dropped = trim_history(
        history, lambda turns: (turns, len(turns) + 1), context_tokens=13, max_new_tokens=10
    )
    assert kept == history[-2:]
    assert (tokens, dropped) == (3, 3)


def test_chat_messages_too_long_for_the_context_say_by_how_much() -> None:
    with pytest.raises(PromptTooLong, match=r"leaves room for 50: shorten them or lower max tokens"):
        build_messages(
            system="", history=HISTORY, message="word " * 200, context_tokens=100, max_new_tokens=50
        )
    with pytest.raises(PromptTooLong, match="max tokens 4096 leaves no room"):
        build_messages(system="", history=[], message="Hi", context_tokens=4096, max_new_tokens=4096)


def test_the_token_estimate_errs_high_for_english_and_counts_other_scripts_per_character() -> None:
    english = "The quick brown fox jumps over the lazy dog. " * 20
    # Llama's tokenizer gives about one token per four characters of English; the estimate must not be lower.
    assert estimate_tokens(english) >= len(english) / 4
    assert estimate_tokens("日本語") == 3
    assert estimate_tokens("") == 0


def test_a_reply_is_cut_where_the_model_starts_a_turn_of_its_own() -> None:
    assert cut_at_stop("Blue. </s><s>[INST] more", ("</s>", "[INST]"), final=False) == ("Blue. ", True)
    assert cut_at_stop("Blue.\nUser: and", ("\nUser:",), final=True) == ("Blue.", True)


def test_a_possible_stop_string_is_held_back_while_streaming_and_released_at_the_end() -> None:
    stops = ("</s>", "[INST]")
    assert cut_at_stop("Blue. [IN", stops, final=False) == ("Blue. ", False)
    assert cut_at_stop("Blue. [IN", stops, final=True) == ("Blue. [IN", False)
    assert cut_at_stop("Blue.", stops, final=False) == ("Blue.", False)
