"""What both APIs share: digest auth, roles, access lists, envelope/pretty, errors, pagination."""
