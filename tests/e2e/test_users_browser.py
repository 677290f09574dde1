"""Managing users in headless Chromium against a real `wagate serve` (issue 15): the first admin
adds a user, resets their password (shown once), and the user signs in with it; the user is made
an admin and back, then removed, and their open session ends."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ServerProcess, free_port, wagate_env

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("WAGATE_CHROMIUM", "/usr/bin/chromium")
NEW_USER = "teammate@example.com"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; scripts/test installs Debian's chromium")
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """`wagate serve` on its first start: (url, admin email, admin password)."""
    proc = ServerProcess(wagate_env(tmp_path / "data"), free_port())
    proc.start()
    try:
        deadline = time.monotonic() + 20
        found = None
        while found is None and time.monotonic() < deadline:
            found = re.search(
                r"as (\S+@\S+)\s+with this password \(shown once\): (\S+)", proc.output()
            )
            time.sleep(0.1)
        assert found, proc.output()
        yield proc.url, found.group(1), found.group(2)
    finally:
        proc.stop()


def sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url + "/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/messages$"))


def test_an_admin_resets_promotes_demotes_and_removes_a_user(
    browser: Browser, server: tuple[str, str, str]
) -> None:
    url, admin_email, admin_password = server
    admin = browser.new_context().new_page()
    admin.on("dialog", lambda dialog: dialog.accept())
    sign_in(admin, url, admin_email, admin_password)

    admin.goto(url + "/settings/users")
    admin.get_by_label("Email").fill(NEW_USER)
    admin.get_by_role("button", name="Add user").click()
    expect(admin.get_by_text(f"{NEW_USER} can now sign in")).to_be_visible()
    first_password = admin.get_by_label("The new user's password").input_value()
    admin.reload()  # shown once: a reload neither shows it again nor adds the user twice
    expect(admin.get_by_text("shown only once")).to_be_visible()
    assert first_password not in admin.content()

    admin.get_by_role("button", name=f"Reset the password of {NEW_USER}").click()
    expect(admin.get_by_text(f"{NEW_USER} has a new password")).to_be_visible()
    new_password = admin.get_by_label("The new password").input_value()
    assert new_password and new_password != first_password

    user_context = browser.new_context()
    user = user_context.new_page()
    user.goto(url + "/sign-in")
    user.get_by_label("Email").fill(NEW_USER)
    user.get_by_label("Password").fill(first_password)
    user.get_by_role("button", name="Sign in").click()
    expect(user.get_by_text("do not match")).to_be_visible()
    sign_in(user, url, NEW_USER, new_password)
    user.goto(url + "/channels")
    expect(user.get_by_role("link", name="Add a channel")).to_have_count(0)

    admin.get_by_role("button", name=f"Make {NEW_USER} an admin").click()
    expect(admin.get_by_text(f"{NEW_USER} is now an admin")).to_be_visible()
    user.goto(url + "/channels")
    expect(user.get_by_role("link", name="Add a channel")).to_be_visible()
    admin.get_by_role("button", name=f"Make {NEW_USER} a member").click()
    expect(admin.get_by_text(f"{NEW_USER} is now a member")).to_be_visible()

    admin.get_by_role("button", name=f"Remove {NEW_USER}").click()
    expect(admin.get_by_text(f"{NEW_USER} was removed and signed out")).to_be_visible()
    expect(admin.get_by_role("cell", name=NEW_USER)).to_have_count(0)
    user.goto(url + "/messages")
    expect(user).to_have_url(re.compile(r"/sign-in"))

    # The only admin left cannot make themselves a member.
    admin.get_by_role("button", name=f"Make {admin_email} a member").click()
    expect(admin.get_by_role("heading", name="The last admin stays")).to_be_visible()
    user_context.close()
