"""The storage host's two verbs: the words the VM commands ask with and its hosts answer to.

They live apart from both sides so that the commands need no host and a host no command.
"""

COPY_VERB = "copy_image"
DELETE_VERB = "delete_image"
