// Package study runs the spotfuse evaluation: it reads a study Config (JSON
// with documented defaults), loads the sections, builds every feature set
// of the ablation grid (baselines: majority class, PCA + head on
// expression, colour/texture statistics + head on the image, randomly
// initialised encoders; pretrained image, expression and fused encoders;
// the same encoders aligned cross-modally),
// evaluates them by stratified k-fold within a section and by
// leave-one-section-out over label fractions and seeds, writes one row per
// run to a tidy results CSV as runs finish (rewritten in a canonical order
// at the end, so the same study gives the same file twice apart from the
// wall-time column), aggregates mean ± sd over seeds and writes the HTML
// report.
//
// The demo, from the repository root with the HER2ST data beside it:
//
//	spotfuse study --config studies/her2st-demo.json
//
// writes out/her2st-demo/{results.csv,summary.csv,report.html} and the
// pretraining checkpoints under out/her2st-demo/pretrain. Running the same
// command again continues an interrupted study.
package study
