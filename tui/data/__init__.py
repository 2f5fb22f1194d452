"""The Data screen: classes, thumbnails, previews, unusable files, the split."""
