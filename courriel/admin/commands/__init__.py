"""The command layer both admin faces call: async functions over the directory and the server config."""
