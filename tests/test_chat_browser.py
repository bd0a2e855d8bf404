"""The chat page in a real headless Chromium, against a fake model server on 127.0.0.1.

Needs Debian's `chromium` and `chromium-driver` (`make browser` installs them) and the chat extra; skips
saying which is missing, unless LLMSTACK_REQUIRE_BROWSER=1 (`make test-browser`) makes that a failure.
LLMSTACK_CHAT_SCREENSHOT=PATH also copies the screenshot there (`make chat-screenshot` -> docs/chat.png).
"""

# ruff: noqa: E402 -- selenium, gradio and the app are imported only once they are known to be there.
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.browser,
    # Gradio's queue calls pandas APIs that pandas 3 deprecates; nothing this project can act on.
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),
]

REPLY = ("A", " signed HTTPS", " predict URL", " that serves", " your model", " from a GPU", " shape.")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 20.0
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,860",
    # Belt and braces: no name but loopback resolves, so the page cannot reach anything outside.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: install Debian's {package} (make browser)"
    for module, extra in (("selenium", "dev"), ("gradio", "chat")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install -e '.[{extra}]'"
    return None


_reason = _missing()
if _reason is not None:
    if os.environ.get("LLMSTACK_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"the browser test cannot run: {_reason}")
    pytest.skip(_reason, allow_module_level=True)

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from llmstack import chat
from llmstack.prompting import template_for
from oci_runtime.auth import Auth
from oci_runtime.predict import PredictClient
from oci_runtime.retry import Backoff
from tests.chat_fake import FakePredictServer


@dataclass
class Page:
    driver: WebDriver
    fake: FakePredictServer
    url: str

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait(self, what: str, condition: Callable[[], bool]) -> None:
        def check(_: WebDriver) -> bool:
            try:
                return condition()
            except StaleElementReferenceException:  # the page re-rendered under us: look again
                return False

        WebDriverWait(self.driver, WAIT_S, poll_frequency=0.05).until(
            check, message=f"waited {WAIT_S} s for {what}"
        )

    def bot_messages(self) -> list[str]:
        return [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, '#chatbot [data-testid="bot"]')]

    def last_bot(self) -> str:
        messages = self.bot_messages()
        return messages[-1] if messages else ""

    def idle(self) -> None:
        """Wait, as a person would, until the last reply is over and the message box is back."""
        self.wait("the page to take a message", lambda: self.find("#message textarea").is_enabled())
        self.wait("the previous reply to end", lambda: not self.stop_button_shown())

    def send(self, text: str) -> None:
        """Type into the message box once the previous reply is over (Gradio re-renders the box meanwhile)."""
        self.idle()

        def typed() -> bool:
            box = self.find("#message textarea")
            box.send_keys(text)
            box.send_keys(Keys.ENTER)
            return True

        self.wait("the message to be typed", typed)

    def stop_button_shown(self) -> bool:
        return any(
            b.is_displayed() for b in self.driver.find_elements(By.CSS_SELECTOR, "#message .stop-button")
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chromium(tmp_path: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _chat_app(fake: FakePredictServer) -> Any:
    """The chat page for llama2-7b-chat against the fake, which speaks the legacy payload (the prompts the
    tests expect are the llama2 template's)."""
    client = PredictClient(fake.url, auth=Auth(mode="none"), timeout_s=WAIT_S, backoff=Backoff(attempts=1))
    settings = chat.ChatSettings(
        model="llama2-7b-chat",
        endpoint=client.stream_url,
        template=template_for("llama2"),
        context_tokens=4096,
        api="legacy",
    )
    return chat.build_app(settings, client)


def test_a_page_with_a_password_refuses_a_wrong_one_and_admits_the_right_one(tmp_path: Path) -> None:
    """What `llmstack chat --share` serves: Gradio's login page before the chat (user llmstack)."""
    with FakePredictServer(REPLY) as fake:
        app = _chat_app(fake)
        url, _ = chat.serve(
            app, host="127.0.0.1", port=_free_port(), share=False, auth=("llmstack", "right-password")
        )
        driver = _chromium(tmp_path)
        try:
            driver.set_page_load_timeout(WAIT_S)
            driver.get(url)
            page = Page(driver=driver, fake=fake, url=url)

            def log_in(password: str) -> None:
                page.wait("the login form", lambda: page.find('input[type="password"]').is_displayed())
                user = page.find('input[type="text"], textarea')
                secret = page.find('input[type="password"]')
                user.clear()
                user.send_keys("llmstack")
                secret.clear()
                secret.send_keys(password)
                driver.find_element(By.XPATH, '//button[normalize-space()="Login"]').click()

            page.wait("the login form", lambda: page.find('input[type="password"]').is_displayed())
            assert "log in to use it" in page.find("body").text  # the login page and its message
            assert not driver.find_elements(By.CSS_SELECTOR, "#chatbot")
            log_in("wrong-password")
            page.wait(
                "the refusal",
                lambda: any(
                    "Incorrect Credentials" in e.text for e in driver.find_elements(By.CSS_SELECTOR, "p")
                ),
            )
            assert not driver.find_elements(By.CSS_SELECTOR, "#chatbot")
            log_in("right-password")
            page.wait("the chat page", lambda: bool(driver.find_elements(By.CSS_SELECTOR, "#chatbot")))
            page.wait("the message box", lambda: page.find("#message textarea").is_displayed())
            assert fake.requests == []  # logging in calls no model
        finally:
            driver.quit()
            app.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with FakePredictServer(REPLY) as fake:
        app = _chat_app(fake)
        url, _ = chat.serve(app, host="127.0.0.1", port=_free_port(), share=False)
        driver = _chromium(tmp_path)
        try:
            driver.set_page_load_timeout(WAIT_S)
            driver.set_script_timeout(WAIT_S)
            driver.get(url)
            yield Page(driver=driver, fake=fake, url=url)
        finally:
            fake.release.set()
            driver.quit()
            app.close()


def test_a_conversation_in_the_browser(page: Page, tmp_path: Path) -> None:
    page.wait("the page to load", lambda: page.find("#message textarea").is_displayed())
    header = " ".join(page.find("#chat-header").text.split())
    assert "Chat with llama2-7b-chat" in header
    assert page.fake.url in header

    # Move the sliders with the keyboard (one step per arrow key) and write a system prompt.
    page.find('#max-tokens input[type="range"]').send_keys(Keys.ARROW_RIGHT * 4)  # 256 -> 320
    page.find('#temperature input[type="range"]').send_keys(Keys.ARROW_LEFT * 4)  # 0.7 -> 0.5
    page.find('#top-p input[type="range"]').send_keys(Keys.ARROW_LEFT * 2)  # 0.9 -> 0.8
    system = page.find("#system-prompt textarea")
    system.clear()
    system.send_keys("Answer in one sentence.")

    # The fake pauses after two tokens: the half-written reply must already be on the page.
    page.fake.hold_after = 2
    page.send("What does a model deployment give me?")
    page.wait("the first two tokens", lambda: page.last_bot() == "A signed HTTPS")
    assert page.stop_button_shown()
    page.fake.release.set()
    page.wait("the whole reply", lambda: page.last_bot() == page.fake.reply)
    page.wait("the status line", lambda: "reply in" in page.find("#chat-status").text)

    (first,) = page.fake.requests
    assert first["parameters"]["max_new_tokens"] == 320
    assert first["parameters"]["temperature"] == pytest.approx(0.5)
    assert first["parameters"]["top_p"] == pytest.approx(0.8)
    assert first["inputs"] == (
        "[INST] <<SYS>>\nAnswer in one sentence.\n<</SYS>>\n\nWhat does a model deployment give me? [/INST]"
    )

    shot = tmp_path / "chat.png"
    assert page.driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000  # a real page, not a blank one
    if target := os.environ.get("LLMSTACK_CHAT_SCREENSHOT"):
        shutil.copyfile(shot, target)

    # An endpoint error reads as one line in the chat.
    page.fake.hold_after = None
    page.fake.fail_status = 401
    page.send("And again?")
    page.wait("the error in the chat", lambda: page.last_bot().startswith("⚠️ 401 NotAuthenticated from"))
    assert "Traceback" not in page.find("body").text

    # Retry after the endpoint recovers: the failed exchange is not sent back to the model.
    page.fake.fail_status = None
    page.idle()
    retry = page.driver.find_elements(By.CSS_SELECTOR, '#chatbot button[aria-label="Retry"]')[-1]
    retry.click()
    # Until the retried reply starts, the last reply on the page is the first one: wait for the request.
    page.wait("the retried request", lambda: len(page.fake.requests) == 3)
    page.wait("the retried reply", lambda: page.bot_messages() == [page.fake.reply, page.fake.reply])
    page.idle()
    assert page.fake.requests[-1]["inputs"] == (
        "[INST] <<SYS>>\nAnswer in one sentence.\n<</SYS>>\n\nWhat does a model deployment give me? [/INST] "
        f"{''.join(REPLY)} </s>"
        "<s>[INST] And again? [/INST]"
    )

    # Stop keeps what arrived and ends the reply there.
    page.fake.release.clear()
    page.fake.hold_after = 1
    page.send("Tell me more")
    page.wait("the first token", lambda: page.last_bot() == "A")
    page.find("#message .stop-button").click()
    page.wait("the stop button to go", lambda: not page.stop_button_shown())
    page.fake.release.set()
    page.wait("the message box to come back", lambda: page.find("#message textarea").is_enabled())
    # The abandoned request is closed as soon as its pending read returns: the fake sees the hang-up.
    page.wait("the stopped stream to be closed", lambda: page.fake.hangups == 1)
    assert page.last_bot() == "A"
    assert len(page.bot_messages()) == 3
