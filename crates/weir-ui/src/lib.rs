//! Weir's web UI, served by the weir binary itself. It grows page by page (issue 15); what is
//! here so far is the run graph's layout, done on the server so that a browser gets a drawn
//! graph instead of laying out a thousand nodes itself.

pub mod layout;
