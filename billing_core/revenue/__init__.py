"""Revenue figures: the rollup kept with every change, the report and top customers, history what-if, charts."""
