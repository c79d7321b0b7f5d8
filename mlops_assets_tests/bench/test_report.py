"""The shared docs writer: a full benchmark run replaces its marked results block and nothing else
of docs/benchmarks.md; a doc without its markers is left untouched."""

import pytest

from bench.report import DOCS_FILE, markers, write_block

DOC = """# Benchmarks

Hand-written setup.

<!-- drift results: begin -->
| old | table |
<!-- drift results: end -->

Hand-written interpretation.
"""


def test_write_block_replaces_only_the_marked_block(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)
    write_block("drift", "- Date: today.\n\n| new | table |", doc)
    text = doc.read_text()
    assert "| old | table |" not in text
    begin, end = markers("drift")
    assert f"{begin}\n- Date: today.\n\n| new | table |\n{end}" in text
    assert text.replace(text[text.index(begin) : text.index(end)], "") == DOC.replace(
        DOC[DOC.index(begin) : DOC.index(end)], ""
    )


@pytest.mark.parametrize("name", ["serving", "drift"])
def test_write_block_without_markers_leaves_the_doc_unchanged(tmp_path, name):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC.replace("<!-- drift results: end -->\n", "") if name == "drift" else DOC)
    before = doc.read_text()
    with pytest.raises(ValueError, match=f"<!-- {name} results: "):
        write_block(name, "| new |", doc)
    assert doc.read_text() == before


def test_the_docs_have_one_block_per_benchmark():
    text = DOCS_FILE.read_text()
    for name in ("data_path", "serving", "drift", "pipeline"):
        begin, end = markers(name)
        assert text.count(begin) == 1 and text.count(end) == 1
        assert text.index(begin) < text.index(end)
