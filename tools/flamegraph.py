#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A small flame graph renderer for `perf script` output (Debian ships no flamegraph package).

    perf script -i perf.data | tools/flamegraph.py --title T --folded OUT.folded > OUT.svg

1. Collapse: every sample of `perf script` is a header line (command, pid, time, period,
   event) and its stack, innermost frame first, one "address symbol+offset (dso)" per line.
   Each stack becomes "command;outermost;...;innermost" weighted by the sample's period (for
   cpu-clock, nanoseconds of CPU), offsets dropped, unknown symbols named after their dso.
2. Render: a static SVG, outermost frames at the bottom, each frame as wide as its share of the
   samples, siblings sorted by name; hovering shows the frame's name and share. Colours tell
   where the code lives: kernel (orange), the program itself (red), the C library (yellow),
   other shared libraries (blue), unknown (grey).
Standard library only.
"""
import argparse
import html
import re
import sys
from collections import defaultdict

FRAME_RE = re.compile(r"^\s*([0-9a-fA-F]+)\s+(.*?)\s+\((.*)\)\s*$")
HEADER_RE = re.compile(r"^(\S.*?)\s+(\d+)(?:/(\d+))?\s+.*?(\d+)\s+([\w:-]+):\s*$")


KINDS = {}  # frame name -> "kernel", "libc", "lib" or "app", for the colours


def kind_of(dso):
    base = dso.rsplit("/", 1)[-1]
    if dso.startswith("[kernel") or dso in ("[vdso]", "[vsyscall]"):
        return "kernel"
    if base.startswith(("libc.so", "libc-", "ld-linux", "libm.so", "libpthread")):
        return "libc"
    if ".so" in base:
        return "lib"
    return "app"


def collapse(lines):
    """Folded stacks: {"comm;f1;f2": weight}."""
    stacks = defaultdict(int)
    comm, weight, frames = None, 1, []

    def flush():
        if comm is not None:
            stack = [comm] + list(reversed(frames))
            stacks[";".join(stack)] += weight

    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            flush()
            comm, weight, frames = None, 1, []
            continue
        if comm is None and not line[:1].isspace():
            # "ringcast  1234/1235  12.345678:  1001001 cpu-clock:"
            parts = line.split()
            comm = parts[0]
            weight = 1
            for i, p in enumerate(parts):
                if p.endswith(":") and i + 1 < len(parts) and parts[i + 1].isdigit():
                    weight = int(parts[i + 1])
                    break
            continue
        m = FRAME_RE.match(line)
        if not m:
            continue
        sym, dso = m.group(2), m.group(3)
        sym = re.sub(r"\+0x[0-9a-fA-F]+$", "", sym)
        if sym in ("[unknown]", ""):
            base = dso.rsplit("/", 1)[-1]
            sym = base if base.startswith("[") else f"[{base}]"
        sym = sym.replace(";", ":")
        kind = kind_of(dso)
        if kind == "kernel":
            sym += "_[k]"
        KINDS.setdefault(sym, kind)
        frames.append(sym)
    flush()
    return stacks


class Node:
    __slots__ = ("name", "value", "children")

    def __init__(self, name):
        self.name, self.value, self.children = name, 0, {}


def build_tree(stacks):
    root = Node("all")
    for stack, w in stacks.items():
        root.value += w
        node = root
        for f in stack.split(";"):
            node = node.children.setdefault(f, Node(f))
            node.value += w
    return root


def colour(name):
    h = sum(ord(c) for c in name) % 40
    kind = KINDS.get(name, "app")
    if kind == "kernel":
        return f"rgb({220 + h % 30},{120 + h * 2},{40 + h})"
    if kind == "libc":
        return f"rgb({215 + h % 30},{200 + h},{60 + h})"
    if kind == "lib":
        return f"rgb({110 + h},{170 + h},{200 + h % 30})"
    if name.startswith("[") or name == "all":
        return f"rgb({160 + h},{160 + h},{160 + h})"
    return f"rgb({210 + h % 40},{70 + h * 2},{70 + h})"


def render(root, title, width=1200, row=16, min_px=0.3):
    depth = [0]

    def measure(n, d):
        depth[0] = max(depth[0], d)
        for c in n.children.values():
            measure(c, d + 1)

    measure(root, 0)
    pad_top, pad_bottom = 40, 24
    height = pad_top + (depth[0] + 1) * row + pad_bottom
    total = root.value or 1
    scale = (width - 20) / total
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Verdana, sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="#f8f8f8"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">'
           f'{html.escape(title)}</text>',
           f'<text x="10" y="{height - 8}" fill="#555">{total:,} units of CPU sampled; '
           f'width = share of samples; outermost frame at the bottom; hover for names</text>']

    def draw(n, x, d):
        w = n.value * scale
        if w < min_px:
            return
        y = height - pad_bottom - (d + 1) * row
        share = 100.0 * n.value / total
        label = html.escape(n.name)
        out.append(f'<g><title>{label} ({share:.2f}%)</title>'
                   f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row - 1}" '
                   f'fill="{colour(n.name)}" rx="2"/>')
        chars = int((w - 6) / 7)
        if chars >= 3:
            text = n.name if len(n.name) <= chars else n.name[:chars - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + row - 4}">{html.escape(text)}</text>')
        out.append("</g>")
        cx = x
        for c in sorted(n.children.values(), key=lambda c: c.name):
            draw(c, cx, d + 1)
            cx += c.value * scale

    draw(root, 10, 0)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description="perf script output on stdin -> flame graph SVG")
    ap.add_argument("--title", default="CPU flame graph")
    ap.add_argument("--folded", help="also write the folded stacks here")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--comm", help="keep only samples of this command (thread name prefix)")
    a = ap.parse_args()
    stacks = collapse(sys.stdin)
    if a.comm:
        stacks = {k: v for k, v in stacks.items() if k.split(";", 1)[0].startswith(a.comm)}
    if not stacks:
        sys.exit("flamegraph.py: no samples in the input")
    if a.folded:
        with open(a.folded, "w") as f:
            for k, v in sorted(stacks.items(), key=lambda kv: -kv[1]):
                f.write(f"{k} {v}\n")
    sys.stdout.write(render(build_tree(stacks), a.title, a.width))


if __name__ == "__main__":
    main()
