"""The Results screen: confusion matrix, per-class accuracy, most-confused pairs, top losses."""
