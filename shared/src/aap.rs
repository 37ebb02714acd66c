//! API types of the AAP/AWX connector: controllers, templates, template launches.
