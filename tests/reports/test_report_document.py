"""One set of blocks renders to Markdown and to a self-contained HTML page."""

import base64

from attentionlite.reports.document import (
    BulletList,
    Figure,
    FileLinks,
    Heading,
    Paragraph,
    Table,
    linked_paths,
    to_html,
    to_markdown,
)

PNG = b"\x89PNG\r\n\x1a\nfake"
BLOCKS = [
    Heading("Numbers"),
    Paragraph("the `resnet50` teacher is **slow** & <big>"),
    BulletList(("one", "two")),
    Table(("model", "latency"), (("a|b", "1.0"),), caption="per model"),
    Figure("figures/latency.png", "latency vs array"),
    FileLinks((("sweep.csv", "every row"),)),
]


def test_markdown_links_figures_and_files_and_escapes_table_pipes():
    text = to_markdown("Report", BLOCKS)
    assert text.startswith("# Report\n\n## Numbers")
    assert "![latency vs array](figures/latency.png)" in text
    assert "- [`sweep.csv`](sweep.csv): every row" in text
    assert "| a\\|b | 1.0 |" in text


def test_html_embeds_the_png_and_escapes_text():
    page = to_html("Report", BLOCKS, {"figures/latency.png": PNG})
    assert base64.b64encode(PNG).decode() in page
    assert "<code>resnet50</code>" in page and "<strong>slow</strong>" in page
    assert "&amp; &lt;big&gt;" in page
    assert '<a href="sweep.csv">' in page


def test_linked_paths_lists_figures_and_files():
    assert linked_paths(BLOCKS) == ["figures/latency.png", "sweep.csv"]
