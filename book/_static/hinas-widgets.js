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

// The widgets typeset their labels with the MathJax 2 API, MathJax.Hub.Queue(["Typeset",
// MathJax.Hub, element]), whenever window.MathJax exists (jupyter-widgets/ipywidgets#3829). The
// book loads MathJax 3, which has no Hub, so every widget with a description (the explorer's
// "run", "seed", "layer") threw "Cannot read properties of undefined (reading 'Queue')". Give
// MathJax 3 that one call, mapped onto its own typesetPromise. MathJax 3 replaces window.MathJax
// when its deferred script runs, so this is installed once the document is parsed (deferred
// scripts have run by then), and before the widget manager renders (on window load).
(function () {
  function typeset(mj, element) {
    var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
    ready.then(function () {
      if (mj.typesetPromise) return mj.typesetPromise(element ? [element] : undefined);
    }).catch(function (err) { console.warn("MathJax could not typeset a widget label:", err); });
  }
  function install() {
    var mj = window.MathJax;
    if (!mj || mj.Hub) return;  // no MathJax on this page, or a MathJax 2 that has its own Hub
    mj.Hub = {
      Queue: function () {
        for (var i = 0; i < arguments.length; i++) {
          var job = arguments[i];
          if (Array.isArray(job) && job[0] === "Typeset") typeset(mj, job[2]);
        }
      },
    };
  }
  document.addEventListener("DOMContentLoaded", install);
  window.addEventListener("load", install);
})();
