"""Phone numbers: inventory, search and purchase, assignment, CNAM, E911, porting."""
