"""Sphinx glue of the hinas book, loaded through ``sphinx.local_extensions`` in ``_config.yml``.

Inline scripts registered once appeared twice on every page. Sphinx 7.4 hands an inline script
added after ``Builder.init()`` (``app.add_js_file(None, body=...)``: sphinx-togglebutton's
``togglebuttonSelector`` at ``builder-inited``, sphinx-thebe's ``const THEBE_JS_URL`` at
``env-before-read-docs``) to the HTML builder as ``_JavaScript(None)``, and the builder's
``prepare_writing`` adds it again from the registry as ``_JavaScript('')``; the two compare
unequal, so both are kept, and the second ``const THEBE_JS_URL`` is a SyntaxError in the browser.
Sphinx 8.2 passes ``''`` in both places (sphinx-doc/sphinx#13402); :func:`setup` does the same for
this build, whatever the Sphinx version, so the duplicate is recognised and dropped.
"""

from __future__ import annotations


def _same_name_for_inline_scripts(app) -> None:
    builder = app.builder
    add_js_file = getattr(builder, "add_js_file", None)
    if add_js_file is None or getattr(add_js_file, "_hinas_inline_fix", False):
        return  # not an HTML builder, or already wrapped

    def add(filename, **kwargs):
        return add_js_file(filename or "", **kwargs)

    add._hinas_inline_fix = True
    builder.add_js_file = add


def setup(app):
    # before any other builder-inited handler (sphinx-togglebutton's adds an inline script there)
    app.connect("builder-inited", _same_name_for_inline_scripts, priority=0)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
