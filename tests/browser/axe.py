"""axe-core (tests/browser/vendor/axe-core, MPL-2.0) run in a page whose CSP stays on.

The script is handed to the page through Playwright's `evaluate` (the DevTools protocol, which
the page's Content-Security-Policy does not govern), not a `<script>` tag, which the policy
would block: the page is checked exactly as it is served.
"""

from functools import cache
from pathlib import Path

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@cache
def _source() -> str:
    return AXE.read_text(encoding="utf-8")


def axe_violations(page, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Each WCAG 2.1 A/AA violation on the page as 'rule (impact): target, target…'.

    `exclude` lists selectors of markup that is Django's own (the caller says why), never ours.
    """
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_source())
    results = page.evaluate(
        """([exclude, tags]) => axe.run(
            {include: [document], exclude: exclude.map((selector) => [selector])},
            {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]}
        )""",
        [list(exclude), WCAG_21_AA],
    )
    return [
        f"{v['id']} ({v['impact']}): " + ", ".join(" ".join(node["target"]) for node in v["nodes"])
        for v in results["violations"]
    ]


BROKEN_REFERENCES = """() => {
    const found = [];
    for (const attribute of ["for", "aria-describedby", "aria-labelledby", "aria-errormessage"]) {
        for (const element of document.querySelectorAll(`[${attribute}]`)) {
            const name = element.id ? `#${element.id}` : element.tagName.toLowerCase();
            for (const id of element.getAttribute(attribute).split(/\\s+/)) {
                if (id && !document.getElementById(id)) {
                    found.push(`idref (serious): ${name} ${attribute}=${id}, no such id`);
                }
            }
        }
    }
    return found;
}"""

STICKING_OUT = """(screen) => {
    const clipped = (element) => {
        for (let up = element.parentElement; up !== document.body; up = up.parentElement) {
            if (getComputedStyle(up).overflowX !== "visible") return true;
        }
        return false;
    };
    const name = (element) => element.tagName.toLowerCase()
        + (element.id ? `#${element.id}` : "")
        + (typeof element.className === "string" && element.className.trim()
            ? "." + element.className.trim().split(/\\s+/).join(".") : "");
    return [...document.querySelectorAll("body *")]
        .filter((element) => element.getBoundingClientRect().right > screen + 1)
        .filter((element) => !clipped(element))
        .map(name)
        .slice(0, 5);
}"""


def broken_references(page) -> list[str]:
    """Each `for`, `aria-describedby`, `aria-labelledby` or `aria-errormessage` that names an id
    no element has (axe accepts an aria-describedby whose ids are all missing, which leaves a
    field's error or hint unsaid)."""
    return page.evaluate(BROKEN_REFERENCES)


def too_wide(page) -> list[str]:
    """WCAG 1.4.10 (reflow): nothing makes the page wider than the screen, so it never scrolls
    sideways; a wide table scrolls inside its own box. Names the elements that stick out."""
    screen = page.viewport_size["width"]
    wide = page.evaluate(STICKING_OUT, screen)
    if not wide and page.evaluate("document.documentElement.scrollWidth") > screen:
        wide = ["the page"]
    if not wide:
        return []
    return [f"reflow (serious): {', '.join(wide)} wider than the {screen} px screen"]
