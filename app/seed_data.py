"""Word lists for the demo catalog: invented authors and publishers, categories, title and blurb parts."""

from __future__ import annotations

AUTHORS: tuple[str, ...] = (
    "Margaret Ellison",
    "Tobias Wren",
    "Adaeze Okonkwo",
    "Henrik Solberg",
    "Lucia Moretti",
    "Samuel Achterberg",
    "Priya Raman",
    "Colm Fitzgerald",
    "Ingrid Vasquez",
    "Theodore Blackwood",
    "Naomi Kessler",
    "Rafael Albuquerque",
    "Eleanor Haverford",
    "Kenji Moriyama",
    "Beatrice Langley",
    "Osman Demirci",
    "Clara Whitlock",
    "Julian Ashcombe",
    "Fatima Benali",
    "Dmitri Volkonsky",
    "Harriet Penrose",
    "Mateo Carrasco",
    "Sigrid Lindqvist",
    "Arthur Pemberton",
    "Amara Nwosu",
    "Felix Hartmann",
    "Rosalind Greaves",
    "Yusuf Haddad",
    "Imogen Thorne",
    "Lorenzo Bellini",
    "Wilhelmina Crane",
    "Declan Murray",
    "Saskia van Dijk",
    "Edmund Rook",
    "Mei-Lin Chao",
    "Gideon Farrow",
    "Vivienne Archer",
    "Tomasz Kowalczyk",
    "Hazel Merriweather",
    "Caspian Reyes",
)

CATEGORIES: tuple[str, ...] = (
    "Fiction",
    "Mystery",
    "Science Fiction",
    "Fantasy",
    "History",
    "Biography",
    "Science",
    "Philosophy",
    "Poetry",
    "Children",
    "Cooking",
    "Travel",
)

PUBLISHERS: tuple[str, ...] = (
    "Harrow & Finch",
    "Blue Heron Press",
    "Lanternfield Books",
    "Marlowe House",
    "Quillstone Publishing",
    "North Meadow Press",
    "Cobalt Tree Editions",
    "Ashgrove & Vale",
    "Tidewater Books",
    "Old Mill Press",
    "Kestrel Publishing",
    "Brightwater House",
    "Greyfriars Press",
    "Silver Birch Books",
    "Foxglove Editions",
)

# fmt: off
# Word lists stay packed: one word per line would make this page five times longer to no one's benefit.
ADJECTIVES: tuple[str, ...] = (
    "Silent", "Hidden", "Northern", "Forgotten", "Golden", "Broken", "Distant", "Quiet", "Burning",
    "Hollow", "Last", "Crimson", "Winter", "Secret", "Wandering", "Endless", "Drowned", "Painted",
    "Restless", "Iron", "Pale", "Long", "Lost", "Bright", "Salt", "Glass", "Evening", "Copper",
)

NOUNS: tuple[str, ...] = (
    "River", "Light", "Garden", "Harbour", "Orchard", "Lantern", "Tide", "Mountain", "Island", "Mirror",
    "Letter", "Compass", "Bridge", "Forest", "Season", "Shore", "Tower", "Voyage", "House", "Storm",
    "Winter", "Road", "Field", "Crown", "Map", "Bell", "Fire", "Song", "Door", "Valley",
)

PLACES: tuple[str, ...] = (
    "Ashford", "Kingsbridge", "Marrow Lane", "Saint Oswin", "Port Elder", "Fenwick Hall", "the Lowlands",
    "Cold Harbour", "Lake Ivory", "the Salt Coast", "Brackenmoor", "Hallow Street", "the Old Quarter",
    "Wrenfield", "Castle Dunmore", "the Marsh", "Aldermere", "the Eastern Isles",
)

SUBJECTS: tuple[str, ...] = (
    "the Atlantic", "the Silk Road", "Clocks", "Maps", "the Printing Press", "Salt", "the Compass",
    "Glass", "Bread", "the Northern Cities", "Paper", "the Calendar", "Rivers", "Light", "Lighthouses",
    "Coffee", "the Alphabet", "Medicine", "Bridges", "the Night Sky", "Trade Winds", "Libraries",
)

SCIENCE_TOPICS: tuple[str, ...] = (
    "Quantum Fields", "the Living Cell", "Deep Time", "the Brain", "Black Holes", "Evolution", "Memory",
    "Microbes", "the Climate", "Numbers", "Sleep", "the Ocean Floor", "Genes", "Chaos", "Light Waves",
)

IDEAS: tuple[str, ...] = (
    "Freedom", "Doubt", "Friendship", "Justice", "Time", "Happiness", "Solitude", "Courage", "Truth",
    "Beauty", "Duty", "Patience", "Attention", "Wonder", "Forgiveness",
)

PEOPLE: tuple[str, ...] = (
    "Ada Rowntree", "Captain Elias Morrow", "Sophia Lindgren", "Jonas Abernathy", "Marguerite Duval",
    "Ibrahim Sarraf", "Eliza Fairbanks", "Professor Anton Weil", "Grace Okafor", "Lord Percival Vane",
)

ANIMALS: tuple[str, ...] = (
    "Olive Otter", "Felix Fox", "Barnaby Badger", "Hattie Hedgehog", "Percy Penguin", "Molly Mole",
    "Sammy Squirrel", "Wendell Whale", "Kit the Kitten", "Dot the Dragonfly", "Little Owl", "Tiny Bear",
)

CUISINES: tuple[str, ...] = (
    "Tuscan", "Nordic", "Persian", "Lebanese", "Basque", "Provençal", "Sichuan", "Andalusian",
    "Vietnamese", "Georgian", "Cornish", "Oaxacan",
)

INGREDIENTS: tuple[str, ...] = (
    "Lemons", "Bread", "Beans", "Mushrooms", "Tomatoes", "Rice", "Chocolate", "Apples", "Herbs",
    "Spices", "Honey", "Noodles",
)

REGIONS: tuple[str, ...] = (
    "the Dolomites", "Patagonia", "the Scottish Isles", "the Atlas Mountains", "Hokkaido", "the Danube",
    "Lapland", "the Andes", "Andalusia", "the Baltic Coast", "Anatolia", "the Outer Hebrides",
)

# fmt: on

# Title patterns per category; {adj}, {noun}, {place}, ... are filled from the lists above.
TITLE_PATTERNS: dict[str, tuple[str, ...]] = {
    "Fiction": ("The {adj} {noun}", "A {noun} in {place}", "The {noun} of {place}", "{adj} {noun}s"),
    "Mystery": ("Murder at {place}", "The {place} Affair", "Death by the {noun}", "The {adj} Witness"),
    "Science Fiction": ("The {adj} Stars", "Beyond the {noun}", "Signal from {place}", "The {noun} Engine"),
    "Fantasy": ("The {adj} Crown", "The {noun} of {place}", "Heir to the {noun}", "The {adj} Throne"),
    "History": (
        "A History of {adj} {noun}",
        "A History of {subject}",
        "{subject}: A History",
        "The Age of {subject}",
    ),
    "Biography": ("{person}: A Life", "The Many Lives of {person}", "{person} and the {adj} Years"),
    "Science": (
        "The Secret Life of {science}",
        "{science} Explained",
        "Understanding {science}",
        "A Short Guide to {science}",
    ),
    "Philosophy": ("On {idea}", "The Meaning of {idea}", "{idea} and {idea2}", "A Defence of {idea}"),
    "Poetry": ("{noun}s and Other Poems", "{adj} Hours", "Songs of the {adj} {noun}", "Poems from {place}"),
    "Children": ("{animal} and the {adj} {noun}", "Where Is {animal}?", "The {adj} Adventures of {animal}"),
    "Cooking": (
        "The {cuisine} Kitchen",
        "Cooking with {ingredient}",
        "Simple {cuisine} Suppers",
        "A Year of {ingredient}",
    ),
    "Travel": (
        "Walking {region}",
        "A Winter in {region}",
        "Slow Roads through {region}",
        "The Road to {region}",
    ),
}

OPENINGS: dict[str, tuple[str, ...]] = {
    "Fiction": (
        "A family gathers for one last summer",
        "Two strangers share a train compartment",
        "A widow inherits a house she has never seen",
    ),
    "Mystery": (
        "A body is found in the locked library",
        "A detective returns to the town that exiled her",
        "A missing ledger points to a decades-old crime",
    ),
    "Science Fiction": (
        "The crew of a generation ship wakes early",
        "A signal arrives from a world that should be empty",
        "An engineer discovers the colony's air is running out",
    ),
    "Fantasy": (
        "A reluctant heir must reclaim a stolen crown",
        "A mapmaker draws a country that does not exist",
        "The last dragon-keeper takes an apprentice",
    ),
    "History": (
        "From ancient harbours to modern cities",
        "Drawing on letters and ledgers",
        "Across five centuries of trade and conflict",
    ),
    "Biography": (
        "Born into a family of fishermen",
        "From a provincial schoolroom to the world stage",
        "Drawing on private diaries never published before",
    ),
    "Science": (
        "In clear and lively prose",
        "Starting from a single everyday question",
        "With the help of simple experiments",
    ),
    "Philosophy": (
        "In a series of short essays",
        "Starting from the ancient schools",
        "Through everyday dilemmas",
    ),
    "Poetry": ("In this luminous collection", "Poems of landscape and loss", "A debut collection"),
    "Children": (
        "A small creature sets out on a big journey",
        "One rainy afternoon, everything changes",
        "A bedtime story about friendship",
    ),
    "Cooking": (
        "More than a hundred recipes",
        "Seasonal recipes for every day",
        "Family recipes gathered over twenty years",
    ),
    "Travel": ("On foot and by slow train", "Over one long season", "With a notebook and a borrowed bicycle"),
}

MIDDLES: tuple[str, ...] = (
    "explores what we keep and what we let go",
    "weaves together memory, place and chance",
    "asks how ordinary people face extraordinary times",
    "moves between humour and quiet heartbreak",
    "brings a vanished world vividly to life",
    "shows how small decisions shape whole lives",
    "offers a fresh look at a familiar story",
)

CLOSINGS: tuple[str, ...] = (
    "A book to read slowly and return to often.",
    "Warm, wise and impossible to put down.",
    "Includes notes, a map and an index.",
    "Perfect for curious readers of every age.",
    "Winner of the Lanternfield Prize.",
    "A new edition with an afterword by the author.",
    "",
)

# Price ranges (in cents) by category: a cookbook costs more than a picture book.
PRICE_RANGES: dict[str, tuple[int, int]] = {
    "Children": (799, 1499),
    "Poetry": (899, 1999),
    "Fiction": (999, 2499),
    "Mystery": (899, 2299),
    "Science Fiction": (999, 2499),
    "Fantasy": (999, 2799),
    "Philosophy": (1299, 3499),
    "Biography": (1499, 3999),
    "Travel": (1499, 3499),
    "History": (1699, 5900),
    "Science": (1499, 4999),
    "Cooking": (1999, 4500),
}
