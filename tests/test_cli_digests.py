"""`newsletter digests` and `newsletter runs` as an editor types them."""

from __future__ import annotations

import email.policy
import json
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main
from tests.conftest import SmtpSink


def run(site: Path, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(site / "config.toml"), *args], env=env)


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"NEWSLETTER_DATABASE__URL": database_url}


@pytest.fixture
def site(tmp_path: Path, env: dict[str, str]) -> Path:
    assert CliRunner().invoke(main, ["init", str(tmp_path)], env=env).exit_code == 0
    recent = datetime.now(UTC) - timedelta(hours=2)
    posts = tmp_path / "posts.jsonl"
    posts.write_text(
        "".join(
            json.dumps(
                {
                    "guid": f"p{n}",
                    "title": f"Story {n}",
                    "body": f"<p>Body {n}</p>",
                    "tags": [tag],
                    "published_at": (recent - timedelta(minutes=n)).isoformat(),
                }
            )
            + "\n"
            for n, tag in enumerate(["Trade", "Korea", "Trade"])
        )
    )
    assert run(tmp_path, env, "articles", "import", str(posts)).exit_code == 0
    people = tmp_path / "people.csv"
    people.write_text("email,name,tags\nayu@example.org,Ayu,\nbudi@example.org,Budi,korea\n")
    assert run(tmp_path, env, "subscribers", "import", str(people)).exit_code == 0
    return tmp_path


def outbox(site: Path) -> list[email.message.EmailMessage]:
    parser = BytesParser(policy=email.policy.default)
    return [
        parser.parsebytes(p.read_bytes())  # type: ignore[misc]
        for p in sorted((site / "outbox").glob("*.eml"))
    ]


def test_a_bad_definition_is_refused_with_the_field_named(site: Path, env: dict[str, str]) -> None:
    bad = run(site, env, "digests", "create", "weekly", "--name", "Weekly", "--cron", "61 7 * * *")
    assert bad.exit_code == 1
    assert "error: cron: '61 7 * * *' is not a cron expression" in bad.output
    zone = run(site, env, "digests", "create", "weekly", "--name", "W", "--timezone", "Mars/X")
    assert "error: timezone: 'Mars/X' is not an IANA time zone" in zone.output
    tag = run(site, env, "digests", "create", "weekly", "--name", "W", "--tags", "nope")
    assert "error: tags: no tag 'nope'" in tag.output
    listing = run(site, env, "digests", "list")
    assert "weekly" not in listing.output


def test_create_list_pause_resume_and_edit(site: Path, env: dict[str, str]) -> None:
    made = run(
        site, env, "digests", "create", "korea-weekly", "--name", "Korea Weekly",
        "--tags", "korea", "--weekly", "fri", "17:00", "--timezone", "Asia/Seoul",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "0 17 * * fri" in made.output
    assert "KST" in made.output  # the next run, in the digest's own zone
    paused = run(site, env, "digests", "pause", "korea-weekly")
    assert "paused" in paused.output
    resumed = run(site, env, "digests", "resume", "korea-weekly")
    assert "next 20" in resumed.output
    edited = run(site, env, "digests", "edit", "korea-weekly", "--max-items", "3")
    assert "max 3" in edited.output and "korea" in edited.output


def test_preview_shows_the_next_issue_with_real_posts(site: Path, env: dict[str, str]) -> None:
    whole = run(site, env, "digests", "preview", "digest", "--format", "text")
    assert whole.exit_code == 0, whole.output
    assert all(f"Story {n}" in whole.output for n in range(3))
    narrowed = run(
        site, env, "digests", "preview", "digest", "--format", "text",
        "--subscriber", "budi@example.org",
    )  # fmt: skip
    assert "Story 1" in narrowed.output and "Story 0" not in narrowed.output
    assert "Hello Budi," in narrowed.output
    html = site / "issue.html"
    assert run(site, env, "digests", "preview", "digest", "-o", str(html)).exit_code == 0
    assert "Story 2" in html.read_text()


def test_test_send_and_send_now_go_through_the_outbox(site: Path, env: dict[str, str]) -> None:
    test = run(site, env, "digests", "test", "digest", "--to", "editor@example.org")
    assert test.exit_code == 0, test.output
    [message] = outbox(site)
    assert message["Subject"].startswith("[Test] ")
    sent = run(site, env, "digests", "send", "digest")
    assert sent.exit_code == 0, sent.output
    assert "sent 2" in sent.output
    received = sorted(m["To"].addresses[0].addr_spec for m in outbox(site))
    assert received == ["ayu@example.org", "budi@example.org", "editor@example.org"]
    runs = run(site, env, "runs", "list")
    assert "manual" in runs.output and "sent" in runs.output
    [run_id] = [line.split()[1] for line in runs.output.splitlines() if line.startswith("run ")]
    shown = run(site, env, "runs", "show", run_id)
    assert "window:" in shown.output and "recipients 2" in shown.output
    again = run(site, env, "runs", "cancel", run_id)
    assert again.exit_code == 1 and "has already ended" in again.output


def test_send_exits_1_when_a_recipient_failed(
    site: Path, env: dict[str, str], smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_sink
    people = site / "more.csv"
    people.write_text("email\nbounce@example.org\n")
    assert run(site, env, "subscribers", "import", str(people)).exit_code == 0
    smtp = {
        **env,
        "NEWSLETTER_MAIL__TRANSPORT": "smtp",
        "NEWSLETTER_SMTP__HOST": "127.0.0.1",
        "NEWSLETTER_SMTP__PORT": str(port),
        "NEWSLETTER_SMTP__SECURITY": "none",
    }
    sent = run(site, smtp, "digests", "send", "digest")
    assert sent.exit_code == 1, sent.output
    assert "failed 1" in sent.output and "sent 2" in sent.output
    assert len(sink.messages) == 2
