//! Static Dutch name, company and place lists the world generator draws from.
//!
//! Everything is `&'static str` so a generated employee borrows its names instead of owning
//! copies: a 100,000-employee world then costs a few pointers per name, not a heap string each.
//! The lists are ASCII on purpose so e-mail addresses can be derived from names without
//! transliteration; Dutch diacritics are rare in these common names.

/// Common Dutch first names given to men.
pub(crate) const MALE_FIRST_NAMES: &[&str] = &[
    "Daan", "Sem", "Lucas", "Levi", "Finn", "Milan", "Bram", "Thijs", "Jesse", "Ruben", "Lars",
    "Tim", "Thomas", "Jeroen", "Mark", "Dennis", "Peter", "Jan", "Kees", "Henk", "Willem",
    "Pieter", "Joost", "Sander", "Bas", "Stijn", "Niels", "Wouter", "Maarten", "Rik", "Koen",
    "Gijs", "Hugo", "Jasper", "Erik", "Frank", "Martijn", "Vincent", "Robin", "Arjen",
];

/// Common Dutch first names given to women.
pub(crate) const FEMALE_FIRST_NAMES: &[&str] = &[
    "Emma", "Julia", "Sophie", "Tess", "Anna", "Sara", "Lisa", "Eva", "Fleur", "Noor", "Sanne",
    "Lotte", "Femke", "Anouk", "Iris", "Marieke", "Annelies", "Ingrid", "Monique", "Petra",
    "Wilma", "Ellen", "Linda", "Esther", "Karin", "Marloes", "Inge", "Mirjam", "Janneke", "Roos",
    "Saskia", "Hanneke", "Jolien", "Nienke", "Floor", "Maud", "Lieke", "Vera", "Daphne", "Els",
];

/// Second given names, used to make two-letter initials for a share of employees.
pub(crate) const SECOND_NAMES: &[&str] = &[
    "Johannes",
    "Maria",
    "Cornelis",
    "Hendrika",
    "Adrianus",
    "Wilhelmina",
    "Petrus",
    "Geertruida",
    "Jacobus",
    "Theodora",
    "Antonius",
    "Catharina",
    "Gerardus",
    "Elisabeth",
];

/// Dutch family names, split from their tussenvoegsel (prefix), which lives in [`NAME_PREFIXES`].
pub(crate) const LAST_NAMES: &[&str] = &[
    "Jong",
    "Jansen",
    "Vries",
    "Berg",
    "Dijk",
    "Bakker",
    "Janssen",
    "Visser",
    "Smit",
    "Meijer",
    "Boer",
    "Mulder",
    "Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "Leeuwen",
    "Dekker",
    "Brouwer",
    "Wit",
    "Dijkstra",
    "Smits",
    "Graaf",
    "Meer",
    "Linden",
    "Kok",
    "Jacobs",
    "Haan",
    "Vermeulen",
    "Heuvel",
    "Veen",
    "Broek",
    "Bruijn",
    "Beek",
    "Willems",
    "Hoekstra",
    "Maas",
    "Verhoeven",
    "Koster",
    "Wal",
    "Kuipers",
    "Postma",
    "Prins",
    "Huisman",
    "Wiel",
    "Bergen",
    "Laan",
    "Hoek",
    "Kramer",
];

/// Tussenvoegsels, with the empty prefix weighted by repetition because most names have none.
pub(crate) const NAME_PREFIXES: &[&str] = &[
    "", "", "", "", "", "", "", "van", "van", "de", "de", "van der", "van den", "van de", "den",
    "ter", "te", "in 't",
];

/// Places of birth and residence.
pub(crate) const CITIES: &[&str] = &[
    "Amsterdam",
    "Rotterdam",
    "Den Haag",
    "Utrecht",
    "Eindhoven",
    "Groningen",
    "Tilburg",
    "Almere",
    "Breda",
    "Nijmegen",
    "Apeldoorn",
    "Haarlem",
    "Arnhem",
    "Enschede",
    "Amersfoort",
    "Zaanstad",
    "Den Bosch",
    "Zwolle",
    "Leiden",
    "Maastricht",
    "Dordrecht",
    "Zoetermeer",
    "Deventer",
    "Delft",
];

/// Street names for addresses.
pub(crate) const STREETS: &[&str] = &[
    "Dorpsstraat",
    "Kerkstraat",
    "Schoolstraat",
    "Molenweg",
    "Stationsweg",
    "Julianastraat",
    "Beatrixlaan",
    "Wilhelminastraat",
    "Nieuwstraat",
    "Marktplein",
    "Lindelaan",
    "Eikenlaan",
    "Parallelweg",
    "Industrieweg",
    "Voordijk",
    "Havenkade",
];

/// First parts of generated company names.
pub(crate) const COMPANY_STEMS: &[&str] = &[
    "Van Dijk",
    "De Vries",
    "Bakker",
    "Jansen",
    "Visser",
    "Smit",
    "Mulder",
    "De Graaf",
    "Brouwer",
    "Noorderlicht",
    "Zuiderzee",
    "Polderland",
    "De Molen",
    "Hollandia",
    "Oranje",
    "Delta",
    "Rijnmond",
    "Veluwe",
    "Kempen",
    "Waddenzee",
    "Lindeboom",
    "De Eendracht",
    "Zilverberg",
    "Groenhart",
];

/// Trades that follow the stem in a company name.
pub(crate) const COMPANY_TRADES: &[&str] = &[
    "Installatietechniek",
    "Bouw",
    "Transport",
    "Logistiek",
    "Zorggroep",
    "Accountants",
    "Advocaten",
    "Techniek",
    "Metaal",
    "Bakkerijen",
    "Detailhandel",
    "Kinderopvang",
    "Software",
    "Schoonmaak",
    "Horeca",
    "Groothandel",
];

/// Department names; the first is the top of every employer's department tree.
pub(crate) const DEPARTMENT_NAMES: &[&str] = &[
    "Directie",
    "Financiën",
    "HR",
    "Verkoop",
    "Inkoop",
    "Logistiek",
    "Productie",
    "Klantenservice",
    "ICT",
    "Marketing",
    "Facilitair",
    "Juridische Zaken",
];

/// A job title, its Loket function group and its full-time monthly base salary in euros.
pub(crate) const JOB_FUNCTIONS: &[(&str, &str, u32)] = &[
    ("Directeur", "9A", 7800),
    ("Teamleider", "7B", 4700),
    ("Medewerker administratie", "4A", 2900),
    ("Financieel controller", "8A", 5400),
    ("HR-adviseur", "6B", 4100),
    ("Accountmanager", "6A", 4000),
    ("Inkoper", "5B", 3600),
    ("Magazijnmedewerker", "3A", 2500),
    ("Productiemedewerker", "3B", 2550),
    ("Klantenservicemedewerker", "3C", 2600),
    ("Software-ontwikkelaar", "7A", 4800),
    ("Systeembeheerder", "6C", 4200),
    ("Marketingspecialist", "6D", 3900),
    ("Facilitair medewerker", "3D", 2500),
    ("Bedrijfsjurist", "8B", 5600),
    ("Planner", "5A", 3400),
];

/// Domains for private e-mail addresses.
pub(crate) const PRIVATE_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "hotmail.com",
    "outlook.com",
    "ziggo.nl",
    "kpnmail.nl",
    "xs4all.nl",
];

/// Reasons an employment ends, as the world records them.
pub(crate) const END_OF_EMPLOYMENT_REASONS: &[&str] = &[
    "Ontslag op verzoek van werknemer",
    "Einde tijdelijk contract",
    "Pensionering",
    "Ontslag met wederzijds goedvinden",
];
