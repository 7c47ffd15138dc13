"""``nbbanana generate``, ``nbbanana edit`` and ``nbbanana demo``.

All three go through :func:`nbbanana.connect`, so they use the offline emulator unless
an API key is set (``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``) or ``--base-url`` points at
a running emulator or proxy. Results are saved as PNG + JSON sidecar (see
:meth:`Result.save`) and the paths printed, one per line, after a one-line summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._cli_common import check_base_url, prepare_outdir
from .errors import ImageError

__all__ = ["register"]

#: What ``nbbanana demo`` (``make demo``) asks the model to do with the sample photo.
DEMO_PROMPT = "Turn the coffee cup bright blue and add a small paper boat next to it."
DEMO_SAMPLE = "coffee.jpg"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    generate = subparsers.add_parser(
        "generate",
        help="generate an image from a prompt",
        description="Generate an image from a prompt and save it (PNG with provenance + "
        "JSON sidecar). Offline emulator unless an API key is set or --base-url is given.",
    )
    generate.add_argument("-p", "--prompt", required=True, help="what to generate")
    _add_common(generate, aspect_help="e.g. 1:1, 16:9 (default: 1:1)")
    generate.set_defaults(handler=_run_generate)

    edit = subparsers.add_parser(
        "edit",
        help="edit or combine images according to a prompt",
        description="Fit IMAGE(s) to the endpoint's limits, send them with the prompt and "
        "save the result. Offline emulator unless an API key is set or --base-url is given.",
    )
    edit.add_argument("images", nargs="+", metavar="IMAGE", help="reference image file(s)")
    edit.add_argument("-p", "--prompt", required=True, help="what to change")
    _add_common(edit, aspect_help="e.g. 1:1, 16:9 (default: keep the input's)")
    _add_region_options(edit)
    edit.set_defaults(handler=_run_edit)

    demo = subparsers.add_parser(
        "demo",
        help="fit the bundled sample images and run an edit (offline unless a key is set)",
        description="Fit the bundled sample images and print the fit report, then edit the "
        "sample photo (offline emulator unless an API key is set) and save the result.",
    )
    demo.add_argument(
        "-o", "--outdir", default="demo-output", help="where to save (default: %(default)s)"
    )
    demo.add_argument(
        "--offline", action="store_true", help="use the offline emulator even with a key"
    )
    demo.set_defaults(handler=_run_demo)


def _add_common(parser: argparse.ArgumentParser, *, aspect_help: str) -> None:
    parser.add_argument(
        "-o", "--outdir", default=".", help="where to save (default: current folder)"
    )
    parser.add_argument("--aspect-ratio", help=aspect_help)
    parser.add_argument("--image-size", help='"512", "1K", "2K", "4K" (where the model offers it)')
    parser.add_argument(
        "--model",
        help="model id or alias, e.g. nano-banana-pro (default: the first preferred model "
        "the endpoint serves; `nbbanana models` lists them)",
    )
    # -- Gemini 3 features (nbbanana.options) --
    parser.add_argument("--thinking-level", help='"minimal" or "high" (models that take one)')
    parser.add_argument("--thoughts", action="store_true",
                        help="ask for the model's thoughts (printed, not saved as results)")  # fmt: skip
    parser.add_argument("--grounding", action="store_true",
                        help="ground the answer with Google Search (sources are printed)")  # fmt: skip
    parser.add_argument("--base-url", help="a Gemini-compatible endpoint: an emulator or a proxy")
    _add_api(parser)
    parser.add_argument(
        "--endpoint",
        help="endpoint profile for the byte limits (gemini, gemini-2025, vertex, proxy-20mb); "
        "default: gemini for Google and the emulator, proxy-20mb for other --base-url",
    )
    parser.add_argument(
        "--offline", action="store_true", help="use the offline emulator even with a key"
    )
    parser.add_argument(
        "--max-cost", type=float, metavar="USD", help="refuse to spend more than USD"
    )
    parser.add_argument("--price-per-image", type=float, metavar="USD",
                        help="what one image of this model costs (a gateway's price, or a model "
                        "nbbanana does not know); else such costs show as unknown")  # fmt: skip
    add_timeout(parser)


def add_timeout(parser: argparse.ArgumentParser) -> None:
    """``--timeout SECONDS``: how long one HTTP attempt may take (also used by ``batch``)."""
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS",
        help="seconds one HTTP attempt may take (default: 300)",
    )  # fmt: skip


def _add_api(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        default="gemini",
        choices=("gemini", "openai"),
        help="openai: an OpenAI-compatible gateway at --base-url (.../v1), key from "
        "OPENAI_API_KEY, --model as the gateway names it (e.g. google/gemini-2.5-flash-image)",
    )


def _connect(args: argparse.Namespace) -> Any:
    # Loaded when the command runs, so that `nbbanana --help` stays fast.
    from ._connect import connect

    if getattr(args, "api", "gemini") == "openai":
        return _connect_openai(args)
    options: dict[str, Any] = {}
    if getattr(args, "model", None):
        options["model"] = args.model
    if getattr(args, "base_url", None):
        options["base_url"] = check_base_url(args.base_url)
    if getattr(args, "timeout", None) is not None:
        options["timeout"] = args.timeout
    if getattr(args, "endpoint", None):
        options["endpoint"] = args.endpoint
    if getattr(args, "max_cost", None) is not None:
        options["max_cost_usd"] = args.max_cost
    if getattr(args, "price_per_image", None) is not None:
        options["price_per_image"] = args.price_per_image
    if args.offline:
        options["offline"] = True
    return connect(**options)


def _connect_openai(args: argparse.Namespace) -> Any:
    from ._openai import connect_openai
    from .errors import InvalidRequest
    from .models import DEFAULT_MODEL

    if not getattr(args, "base_url", None) or getattr(args, "offline", False):
        raise InvalidRequest(
            "--api openai needs --base-url: the gateway's OpenAI-compatible URL, e.g. "
            "https://gateway.example.com/v1 (and OPENAI_API_KEY set)."
        )
    return connect_openai(
        args.base_url,
        model=getattr(args, "model", None) or DEFAULT_MODEL,
        endpoint=getattr(args, "endpoint", None),
        max_cost_usd=getattr(args, "max_cost", None),
        price_per_image=getattr(args, "price_per_image", None),
    )


def _features(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "thinking_level": args.thinking_level,
        "include_thoughts": True if args.thoughts else None,
        "grounding": args.grounding,
    }


def _report(result: Any, outdir: str) -> None:
    paths = result.save(outdir)
    print(result.footer())
    _print_said(result)
    for path in paths:
        print(path)


def _print_said(result: Any) -> None:
    """What came with the image: the model's words, its thoughts, its sources."""
    if result.text:
        print(f"model said: {result.text}")
    for thought in result.thoughts:
        print(f"thought: {' '.join(thought.split())}")
    for source in result.sources:
        print(f"source: {source.title} <{source.url}>")


def _run_generate(args: argparse.Namespace) -> int:
    prepare_outdir(args.outdir)
    session = _connect(args)
    result = session.generate(
        args.prompt, aspect_ratio=args.aspect_ratio, image_size=args.image_size, **_features(args)
    )
    _report(result, args.outdir)
    return 0


def _run_edit(args: argparse.Namespace) -> int:
    prepare_outdir(args.outdir)
    session = _connect(args)
    missing = [name for name in args.images if not Path(name).is_file()]
    if missing:
        raise ImageError(f"No such image file: {', '.join(missing)}.", source=missing[0])
    if args.region is not None or args.mask is not None:
        return _run_edit_region(session, args)
    result = session.edit(
        list(args.images), args.prompt, aspect_ratio=args.aspect_ratio,
        image_size=args.image_size, **_features(args),
    )  # fmt: skip
    _report(result, args.outdir)
    return 0


# --------------------------------------------------------------------------- regional edits


def _add_region_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("regional edit (one image, edited at full resolution)")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--region", metavar="L,T,R,B", help="edit only this box (pixels of the upright image)"
    )
    where.add_argument("--mask", metavar="MASK", help="edit only the non-zero pixels of MASK")
    group.add_argument(
        "--margin",
        type=_amount,
        default=None,
        help="context around the region: a fraction of its size (0.25) or pixels (64)",
    )
    group.add_argument(
        "--feather", type=_amount, default=None, help="blend width: a fraction or pixels"
    )
    group.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        help="how sure the placement must be to blend the answer (default 0.7)",
    )
    group.add_argument("--jpeg", action="store_true", help="save a quality-95 JPEG, not a PNG")


def _unplaced_saved(exc: Any, outdir: str) -> Any:
    """A refused placement, with the unblended answer (paid for) saved in ``outdir`` and
    the message saying where, instead of pointing at a Python attribute."""
    if exc.answer is None:
        return exc
    image = next(p for p in exc.answer.save(outdir) if not str(p).endswith(".json"))
    text = str(exc).replace(
        "The unblended answer is on this error's .answer",
        f"The unblended answer was saved as {image}",
    )
    return type(exc)(text, estimate=exc.estimate, answer=exc.answer)


def _amount(text: str) -> float | int:
    """``"64"`` → 64 pixels, ``"0.25"`` → a fraction."""
    try:
        return int(text) if text.strip().isdigit() else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _run_edit_region(session: Any, args: argparse.Namespace) -> int:
    from .errors import InvalidRequest
    from .region import DEFAULT_MARGIN, DEFAULT_MIN_CONFIDENCE, RegistrationError, edit_region

    if len(args.images) != 1:
        raise InvalidRequest("--region and --mask edit one image: give exactly one IMAGE.")
    if args.mask is not None and not Path(args.mask).is_file():
        raise InvalidRequest(f"No such mask file: {args.mask}.")
    try:
        result = edit_region(
            session,
            args.images[0],
            args.prompt,
            region=args.region,
            mask=args.mask,
            margin=args.margin if args.margin is not None else DEFAULT_MARGIN,
            feather=args.feather,
            min_confidence=(
                args.min_confidence if args.min_confidence is not None else DEFAULT_MIN_CONFIDENCE
            ),
            aspect_ratio=args.aspect_ratio,
            image_size=args.image_size,
            **_features(args),
        )
    except RegistrationError as exc:
        raise _unplaced_saved(exc, args.outdir) from None
    paths = result.save(args.outdir, format="jpeg" if args.jpeg else "png")
    print(result.footer() + f" · region {result.region['box']} of {result.region['source_size']}")
    _print_said(result)
    for path in paths:
        print(path)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    # Loaded when the command runs, so that `nbbanana --help` stays fast.
    from ._cli_fit import print_fit_table
    from .samples import sample_path, sample_paths

    prepare_outdir(args.outdir)
    print("1. Fit the bundled sample images to the request budget.\n")
    print_fit_table(sample_paths(), file=sys.stdout)

    session = _connect(args)
    where = "the offline emulator" if session.offline else (session.base_url or "Gemini")
    print(f"\n2. Edit {DEMO_SAMPLE} via {where}.\n   prompt: {DEMO_PROMPT}")
    result = session.edit(sample_path(DEMO_SAMPLE), DEMO_PROMPT)
    paths = result.save(args.outdir)
    print(f"   {result.footer()}")
    print(f"\nSaved the edited image to {paths[0]}")
    print(f"(its provenance is in {paths[-1]})")
    return 0
