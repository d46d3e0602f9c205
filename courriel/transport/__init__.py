"""The transport pipeline (DESIGN.md §4): receive → commit → categorize → route → deliver → track."""
