// The widget manager (npm @jupyter-widgets/html-manager, copied into _static by hinas.book)
// derives the URL of its font files from its RequireJS module id; map that id to the copy
// served by this book, or the fonts resolve against the page URL and 404.
(function () {
  var base = new URL(".", document.currentScript.src).href;  // .../_static/
  window.__jupyter_widgets_assets_path__ = base + "html-manager/";
  if (window.requirejs) {
    window.requirejs.config({ paths: {
      "@jupyter-widgets/html-manager": base + "html-manager/embed-amd",
      "@jupyter-widgets/html-manager/dist": base + "html-manager",
    } });
  }
})();
