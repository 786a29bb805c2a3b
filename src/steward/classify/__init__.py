"""Classification fine-tuning (train.task = "classify"): the classifier trainer (`trainer`), its data
(`data`), the fairness monitor's hook-up into the trainer's callbacks (`monitor`) and the evaluation of
a trained classifier on an identity set (`evaluate`). Sits above `steward.train` and `steward.fairness`,
which know nothing of it."""
