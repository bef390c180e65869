// The explorer's points page reads the renderer from this one global (tools/vendor_js.sh bundles it).
import createScatterplot from "regl-scatterplot";
import { version } from "regl-scatterplot/package.json";

window.reglScatterplot = { createScatterplot, version };
