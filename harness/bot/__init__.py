"""The pull-request bot: what to say on a pull request (one comment, labels, a commit status) from a results
directory, and saying it through GitHub's REST API with PyGithub, or into files with --dry-run."""
