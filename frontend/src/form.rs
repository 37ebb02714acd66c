//! The settings sections' shared form and list: an editable list of named items with an add form
//! that opens and closes, whose problems are listed in words before and after saving.
