/** Vocabulary of the tiny world's story problems (ASCII only). Changing it changes the shipped splits. */

export const FEMALE_NAMES = [
  'Mia', 'Ava', 'Emma', 'Lily', 'Zoe', 'Nora', 'Ella', 'Ruby', 'Anna', 'Lucy', 'Sara', 'Hana', 'Ivy',
  'Rosa', 'Jane', 'Kate', 'Maya', 'Leah', 'Amy', 'Eva', 'Gia', 'Nina', 'Tara', 'Vera',
] as const;

export const MALE_NAMES = [
  'Tom', 'Sam', 'Ben', 'Leo', 'Max', 'Jack', 'Noah', 'Liam', 'Omar', 'Ravi', 'Luis', 'Finn', 'Owen',
  'Eli', 'Hugo', 'Ian', 'Carl', 'Dan', 'Adam', 'Theo', 'Raj', 'Ken', 'Paul', 'Yuri',
] as const;

/** Countable objects, plural. */
export const OBJECTS = [
  'apples', 'pencils', 'marbles', 'stickers', 'books', 'cookies', 'cards', 'shells', 'coins', 'eggs',
  'stamps', 'toys', 'flowers', 'candies', 'balloons', 'beads', 'rocks', 'crayons', 'oranges',
  'cupcakes', 'buttons', 'blocks', 'pens', 'muffins', 'plums', 'tickets', 'bottles', 'socks', 'lemons',
  'shirts', 'peaches', 'erasers', 'pears', 'kites', 'cups', 'bells',
] as const;

/** Containers as [singular, plural]. */
export const CONTAINERS = [
  ['box', 'boxes'], ['bag', 'bags'], ['pack', 'packs'], ['jar', 'jars'], ['basket', 'baskets'],
  ['tray', 'trays'], ['crate', 'crates'], ['can', 'cans'], ['bucket', 'buckets'], ['bowl', 'bowls'],
] as const;

export const PLACES = ['the park', 'school', 'the shop', 'the farm', 'the beach', 'the library', 'the zoo', 'the fair'] as const;

/** Things a machine makes at a steady rate, plural. */
export const PRODUCTS = ['toys', 'cups', 'bottles', 'boxes', 'shirts', 'cards', 'bowls', 'kites'] as const;

/** Activities measured in time, past tense. */
export const ACTIVITIES = ['practiced piano', 'played chess', 'swam', 'painted', 'studied', 'ran', 'danced', 'read'] as const;
