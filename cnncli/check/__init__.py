"""`cnncli dataset check`: what is wrong with a built dataset before anyone trains on it:
duplicate pictures (exact and near) with the leaks between splits and the conflicting
labels they make, label issues ranked by confident learning (cleanlab) on out-of-fold
probabilities, regression rows far from their out-of-fold prediction, class counts, blank
images and brightness/contrast outliers; a report folder (check.json, issues.csv,
index.html). Reads datasets through cnncli.datasets; scikit-learn, cleanlab and (with
--model) TensorFlow are imported only inside the functions that use them."""
